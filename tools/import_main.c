/* tools/import_main.c: bt-import, batch import of CSV, TSV and JSON Lines
 * into a table (docs/import.md).  Parses the flags into imp_opts; the work
 * is tools/import_load.c (reading in import_csv.c, import_jsonl.c,
 * import_source.c; mapping in import_map.c; pre-split in import_split.c;
 * progress in import_progress.c). */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "tools/import_load.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-import - import CSV, TSV or JSON Lines into a bigtable-c table\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-import --table T --format csv|tsv|jsonl --row-key FIELD[,FIELD...]\n"
        "              --columns 'FIELD=family[:qualifier],...' [--timestamp FIELD]\n"
        "              [--create] [--bulk] [--rejects FILE] [--lock URL] [OPTIONS] FILE|-\n"
        "\n"
        "DESCRIPTION\n"
        "    Reads records from FILE (or stdin for -), turns each into one row and\n"
        "    writes it.  CSV and TSV files start with a header row naming the\n"
        "    fields; JSON Lines records are objects whose top-level members are the\n"
        "    fields.  The row key is the --row-key fields joined with --key-sep;\n"
        "    each --columns entry writes one cell.  Without --timestamp every cell\n"
        "    gets one timestamp taken when the import starts (printed if it stops,\n"
        "    so a rerun with --default-timestamp writes the very same cells).\n"
        "\n"
        "    Online (default): rows go as batched mutations from several writer\n"
        "    threads to every tablet server in parallel; each row is atomic.\n"
        "    --bulk: cells are sorted (spilling to --tmp-dir past --memory-mb),\n"
        "    written as SSTables cut at the tablet boundaries and attached to\n"
        "    their tablets atomically: a row is visible with all its cells or not\n"
        "    at all, also when the import is killed.  Full docs: docs/import.md.\n"
        "\n"
        "    A bad record (wrong field count, unterminated quote, invalid JSON,\n"
        "    missing or empty row key, bad timestamp, oversize key or value, a\n"
        "    row the cluster refuses) is rejected and the import goes on.\n"
        "\n"
        "OPTIONS\n"
        "    --table T             the table (required)\n"
        "    --format F            csv, tsv or jsonl (required)\n"
        "    --row-key F1,F2..     fields forming the row key (required)\n"
        "    --columns MAP         FIELD=family:qualifier,...  (required); FIELD=family\n"
        "                          uses the field name as qualifier\n"
        "    --timestamp FIELD     cell timestamps from FIELD, in microseconds\n"
        "    --default-timestamp US  the timestamp of every cell without --timestamp\n"
        "                          (default: the time the import starts)\n"
        "    --key-sep S           separator of composite row keys (default \"#\")\n"
        "    --skip-empty          an empty field writes no cell (default: an empty value)\n"
        "    --create              create the table with the mapped families, pre-split\n"
        "                          from a sample of the input's row keys\n"
        "    --max-versions N      --create: versions kept per column (default 1; 0: all)\n"
        "    --tablets N           --create: tablets to make (default: one per\n"
        "                          --tablet-mb of input, at most --max-tablets)\n"
        "    --tablet-mb N         --create: input MB per tablet (default 64)\n"
        "    --max-tablets N       --create: at most N tablets (default 64)\n"
        "    --sample-mb N         --create from stdin: MB buffered to sample (default 64)\n"
        "    --bulk                bulk load instead of online mutations\n"
        "    --memory-mb N         --bulk: memory for sorting before a run spills\n"
        "                          (default 256)\n"
        "    --tmp-dir DIR         --bulk: where sorted runs spill (default $TMPDIR or /tmp)\n"
        "    --rejects FILE        write rejected records there, one per line:\n"
        "                          LINE<TAB>REASON<TAB>RECORD (escaped: \\\\ \\t \\n \\r \\xHH)\n"
        "    --max-rejects N       stop after N rejected records (default: no limit)\n"
        "    --workers N           online: writer threads (default 4)\n"
        "    --batch-rows N        online: rows per batch (default 1000)\n"
        "    --progress-interval S  seconds between progress lines when stderr is not\n"
        "                          a terminal (default 5; a terminal gets a live bar)\n"
        "    -q, --quiet           no progress and no summary (errors still shown)\n"
        "    --max-record-mb N     longest record accepted (default 64)\n"
        "    --timeout-ms MS       deadline of one cluster call, retries included\n"
        "                          (default 60000)\n"
        "    --lock URL            bt://HOST:PORT or etcd://HOST:PORT[,...]\n"
        "                          (default $BT_LOCK, else bt://127.0.0.1:7000)\n"
        "    --help                print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    Progress on stderr; the summary on stdout:\n"
        "        bt-import: imported 3 rows, 6 cells, 82 B in 0.05 s (60 rows/s,\n"
        "        120 cells/s); 1 rejected\n"
        "    Without --rejects the first 10 rejects are shown on stderr.\n"
        "\n"
        "EXIT STATUS\n"
        "    0 every record imported; 1 some records rejected (the rest imported);\n"
        "    2 bad flags, unreadable input, a header or mapping that does not fit,\n"
        "    a missing table (without --create) or family; 3 the import failed or\n"
        "    stopped (cluster unavailable, bulk load failed, --max-rejects passed):\n"
        "    the message says how many rows were written.\n");
}

static int bad(const char *fmt, const char *arg)
{
    bt_cli_bad("bt-import", fmt, arg);
    return IMP_EXIT_USAGE;
}

enum {
    N_MAX_VERSIONS, N_TABLETS, N_TABLET_MB, N_MAX_TABLETS, N_SAMPLE_MB, N_MEMORY_MB, N_MAX_REJECTS, N_WORKERS,
    N_BATCH_ROWS, N_PROGRESS, N_MAX_RECORD, N_TIMEOUT, N_DEFAULT_TS
};

static const struct {
    const char *name;
    unsigned long min, max;
} nums[] = {
    [N_MAX_VERSIONS] = {"--max-versions", 0, 1000000},  [N_TABLETS] = {"--tablets", 1, 4096},
    [N_TABLET_MB] = {"--tablet-mb", 1, 1048576},       [N_MAX_TABLETS] = {"--max-tablets", 1, 4096},
    [N_SAMPLE_MB] = {"--sample-mb", 1, 65536},         [N_MEMORY_MB] = {"--memory-mb", 1, 1048576},
    [N_MAX_REJECTS] = {"--max-rejects", 1, ~0ul},      [N_WORKERS] = {"--workers", 1, 256},
    [N_BATCH_ROWS] = {"--batch-rows", 1, 100000},      [N_PROGRESS] = {"--progress-interval", 1, 86400},
    [N_MAX_RECORD] = {"--max-record-mb", 1, 1024},     [N_TIMEOUT] = {"--timeout-ms", 100, 3600000},
    [N_DEFAULT_TS] = {"--default-timestamp", 0, (unsigned long)INT64_MAX - 1},
};

static const char *const strs[] = {"--table", "--format", "--row-key", "--columns", "--timestamp", "--key-sep",
                                   "--tmp-dir", "--rejects", "--lock", NULL};

int main(int argc, char **argv)
{
    imp_opts o;
    memset(&o, 0, sizeof o);
    o.max_versions = 1;
    o.tablet_mb = 64;
    o.max_tablets = 64;
    o.sample_mb = 64;
    o.workers = 4;
    o.batch_rows = 1000;
    o.queue_batches = 2;
    o.progress_interval_ms = 5000;
    o.timeout_ms = 60000;
    o.max_record = (size_t)64 << 20;
    const char *env_lock = getenv("BT_LOCK");
    o.lock_url = env_lock && *env_lock ? env_lock : "bt://127.0.0.1:7000";
    const char *sv[9] = {0}; /* values of strs[] */
    const char *format = NULL;
    bool seen_num[sizeof nums / sizeof *nums] = {0};
    bool skip_empty = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--create")) { o.create = true; continue; }
        if (!strcmp(a, "--bulk")) { o.bulk = true; continue; }
        if (!strcmp(a, "--skip-empty")) { skip_empty = true; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { o.quiet = true; continue; }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (o.input) return bad("one input only (got a second: \"%s\")", a);
            o.input = a;
            continue;
        }
        char name[64];
        const char *v = NULL, *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        int num = -1, str = -1;
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++)
            if (!strcmp(name, nums[k].name)) num = (int)k;
        for (int k = 0; strs[k]; k++)
            if (!strcmp(name, strs[k])) str = k;
        if (num < 0 && str < 0) return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        if (str >= 0) {
            if (!*v && strcmp(name, "--key-sep")) return bad("%s needs a non-empty value", name);
            sv[str] = v;
            continue;
        }
        unsigned long n;
        if (bt_parse_ulong(v, nums[num].min, nums[num].max, &n)) {
            fprintf(stderr, "bt-import: %s: \"%s\" is not a number in [%lu, %lu]\n(see bt-import --help)\n", name,
                    v, nums[num].min, nums[num].max);
            return IMP_EXIT_USAGE;
        }
        seen_num[num] = true;
        switch (num) {
        case N_MAX_VERSIONS: o.max_versions = (uint32_t)n; break;
        case N_TABLETS: o.tablets = (unsigned)n; break;
        case N_TABLET_MB: o.tablet_mb = (unsigned)n; break;
        case N_MAX_TABLETS: o.max_tablets = (unsigned)n; break;
        case N_SAMPLE_MB: o.sample_mb = (unsigned)n; break;
        case N_MEMORY_MB: o.memory_mb = n; break;
        case N_MAX_REJECTS: o.max_rejects = n; break;
        case N_WORKERS: o.workers = (unsigned)n; break;
        case N_BATCH_ROWS: o.batch_rows = (unsigned)n; break;
        case N_PROGRESS: o.progress_interval_ms = (unsigned)n * 1000; break;
        case N_MAX_RECORD: o.max_record = (size_t)n << 20; break;
        case N_TIMEOUT: o.timeout_ms = (int)n; break;
        default:
            o.map.default_ts = (int64_t)n;
            o.have_default_ts = true;
            break;
        }
    }
    o.table = sv[0];
    format = sv[1];
    if (sv[8]) o.lock_url = sv[8];
    o.tmp_dir = sv[6];
    o.rejects_path = sv[7];
    if (!o.table) return bad("%s is required", "--table");
    if (!format) return bad("%s is required", "--format");
    if (imp_format_parse(format, &o.fmt)) return bad("--format: \"%s\" is not csv, tsv or jsonl", format);
    if (!o.input) return bad("%s", "the input FILE (or - for stdin) is missing");
    if (!o.bulk && (seen_num[N_MEMORY_MB] || o.tmp_dir)) return bad("%s", "--memory-mb and --tmp-dir go with --bulk");
    if (o.bulk && (seen_num[N_WORKERS] || seen_num[N_BATCH_ROWS]))
        return bad("%s", "--workers and --batch-rows are for online imports, not --bulk");
    if (!o.create && (seen_num[N_TABLETS] || seen_num[N_TABLET_MB] || seen_num[N_MAX_TABLETS] ||
                      seen_num[N_SAMPLE_MB] || seen_num[N_MAX_VERSIONS]))
        return bad("%s", "--tablets, --tablet-mb, --max-tablets, --sample-mb and --max-versions go with --create");
    if (sv[4] && o.have_default_ts) return bad("%s", "--timestamp and --default-timestamp exclude each other");
    if (!o.memory_mb) o.memory_mb = 256;
    char err[512];
    if (imp_map_parse(&o.map, sv[2], sv[3], sv[4], sv[5], err, sizeof err)) {
        imp_map_free(&o.map);
        return bad("%s", err);
    }
    o.map.skip_empty = skip_empty;
    signal(SIGPIPE, SIG_IGN);
    int code = imp_run(&o);
    imp_map_free(&o.map);
    return code;
}
