/* tests/unit/test_import_parse.c: bt-import's readers and mapping
 * (tools/import_csv.c, import_jsonl.c, import_map.c, import_source.c,
 * import_split.c), without a cluster.
 *
 * Every input is read twice: in one piece and one byte per read() call, so
 * records that straddle buffer refills are covered too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/import_csv.h"
#include "tools/import_jsonl.h"
#include "tools/import_map.h"
#include "tools/import_source.h"
#include "tools/import_split.h"

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct rec_copy {
    uint64_t line;
    char *raw;
    size_t raw_len;
    char *fields[16];
    size_t lens[16];
    size_t n;
    char error[128];
} rec_copy;

typedef struct slow_src {
    const uint8_t *p;
    size_t len, pos;
} slow_src;

static ssize_t slow_read(void *arg, void *buf, size_t n)
{
    slow_src *s = arg;
    if (s->pos >= s->len || n == 0) return 0;
    memcpy(buf, s->p + s->pos, 1);
    s->pos++;
    return 1;
}

static char *dupn(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Reads all records of text (len bytes) in format fmt; slow: one byte per read. */
static size_t read_all(imp_format fmt, const char *text, size_t len, bool slow, rec_copy *out, size_t cap)
{
    imp_mem_src m = {(const uint8_t *)text, len, 0, -1};
    slow_src s = {(const uint8_t *)text, len, 0};
    imp_reader *r = slow ? imp_reader_new(fmt, slow_read, &s, 0) : imp_reader_new(fmt, imp_mem_read, &m, 0);
    cr_assert_not_null(r);
    size_t n = 0;
    imp_record rec;
    int rc;
    while ((rc = imp_reader_next(r, &rec)) == 1) {
        cr_assert_lt(n, cap, "more records than expected");
        rec_copy *c = &out[n++];
        memset(c, 0, sizeof *c);
        c->line = rec.line;
        c->raw = dupn(rec.raw, rec.raw_len);
        c->raw_len = rec.raw_len;
        if (rec.error) snprintf(c->error, sizeof c->error, "%s", rec.error);
        cr_assert_leq(rec.n_fields, 16);
        c->n = rec.n_fields;
        for (size_t i = 0; i < rec.n_fields; i++) {
            c->fields[i] = dupn(rec.fields[i].p, rec.fields[i].len);
            c->lens[i] = rec.fields[i].len;
        }
    }
    cr_assert_eq(rc, 0);
    imp_reader_free(r);
    return n;
}

static void free_recs(rec_copy *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].raw);
        for (size_t k = 0; k < r[i].n; k++) free(r[i].fields[k]);
    }
}

#define FIELD_EQ(rec, i, lit)                                                                         \
    do {                                                                                              \
        cr_assert_eq((rec).lens[i], sizeof(lit) - 1, "field %d: %zu bytes \"%s\", want \"%s\"", (int)(i), \
                     (rec).lens[i], (rec).fields[i], lit);                                            \
        cr_assert_eq(memcmp((rec).fields[i], lit, sizeof(lit) - 1), 0, "field %d: \"%s\", want \"%s\"",   \
                     (int)(i), (rec).fields[i], lit);                                                 \
    } while (0)

/* Runs body for both the fast and the slow reader. */
#define BOTH(fmt, text, recs, n, body)                                                      \
    for (int slow_ = 0; slow_ < 2; slow_++) {                                               \
        rec_copy recs[32];                                                                  \
        size_t n = read_all(fmt, text, sizeof(text) - 1, slow_, recs, 32);                  \
        body;                                                                               \
        free_recs(recs, n);                                                                 \
    }

/* ---- CSV ------------------------------------------------------------------------------ */

Test(csv, quoted_separators_and_doubled_quotes)
{
    static const char text[] = "a,b,c\n1,\"x,y\",\"he said \"\"hi\"\"\"\n";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 2);
        cr_assert_eq(r[1].n, 3);
        FIELD_EQ(r[1], 0, "1");
        FIELD_EQ(r[1], 1, "x,y");
        FIELD_EQ(r[1], 2, "he said \"hi\"");
        cr_assert_eq(r[1].line, 2);
        cr_assert_str_eq(r[1].raw, "1,\"x,y\",\"he said \"\"hi\"\"\"");
    });
}

Test(csv, embedded_crlf_and_line_numbers)
{
    static const char text[] = "k,v\r\n1,\"l1\r\nl2\nl3\"\r\n2,x\r\n3,\"\"\r\n";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 4);
        FIELD_EQ(r[1], 1, "l1\r\nl2\nl3");
        cr_assert_eq(r[1].line, 2);
        cr_assert_eq(r[2].line, 5, "the record after a 3-line field starts on line 5, got %llu",
                     (unsigned long long)r[2].line);
        FIELD_EQ(r[2], 1, "x");
        FIELD_EQ(r[3], 1, "");
        cr_assert_eq(r[3].line, 6);
    });
}

Test(csv, empty_fields)
{
    static const char text[] = ",,\n\"\",,\"\"\na,,\n";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 3);
        for (size_t i = 0; i < 3; i++) cr_assert_eq(r[i].n, 3, "record %zu has %zu fields", i, r[i].n);
        FIELD_EQ(r[0], 0, "");
        FIELD_EQ(r[1], 2, "");
        FIELD_EQ(r[2], 0, "a");
        FIELD_EQ(r[2], 2, "");
    });
}

Test(csv, no_trailing_newline)
{
    static const char text[] = "a,b\n1,2";
    static const char text2[] = "a,b\n1,\"2\"";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 2);
        FIELD_EQ(r[1], 1, "2");
    });
    BOTH(IMP_CSV, text2, r, n, {
        cr_assert_eq(n, 2);
        FIELD_EQ(r[1], 1, "2");
    });
}

Test(csv, bom_and_blank_lines)
{
    static const char text[] = "\xEF\xBB\xBFid,v\n\n1,a\r\n\r\n\n2,b\n";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 3);
        FIELD_EQ(r[0], 0, "id");
        cr_assert_eq(r[1].line, 3);
        cr_assert_eq(r[2].line, 6);
        FIELD_EQ(r[2], 1, "b");
    });
}

Test(csv, quote_inside_unquoted_field_is_data)
{
    static const char text[] = "a,b\n5\" disk,x\n";
    BOTH(IMP_CSV, text, r, n, {
        cr_assert_eq(n, 2);
        FIELD_EQ(r[1], 0, "5\" disk");
    });
}

Test(csv, bad_records_cost_one_line)
{
    /* line 3: garbage after a closing quote; line 5: a quote never closed */
    static const char text[] = "k,v\n1,a\n2,\"b\"x\n3,c\n4,\"open\n5,e\n6,f\n";
    BOTH(IMP_CSV, text, r, n, {
        /* the quote opened on line 5 runs to the end of the input: line 5 is
         * rejected, lines 6 and 7 are read again as records */
        cr_assert_eq(n, 7, "got %zu records", n);
        cr_assert_str_eq(r[2].error, "unexpected character after a closing quote");
        cr_assert_eq(r[2].line, 3);
        cr_assert_str_eq(r[2].raw, "2,\"b\"x");
        FIELD_EQ(r[3], 0, "3");
        cr_assert_eq(r[3].line, 4);
        cr_assert_str_eq(r[4].error, "unterminated quoted field");
        cr_assert_eq(r[4].line, 5);
        cr_assert_str_eq(r[4].raw, "4,\"open");
        cr_assert_eq(r[5].line, 6);
        FIELD_EQ(r[5], 1, "e");
        cr_assert_eq(r[6].line, 7);
        cr_assert_str_eq(r[6].error, "");
    });
}

Test(csv, long_quoted_field_over_the_buffer)
{
    size_t big = 3u << 20;
    char *text = malloc(big + 64);
    cr_assert_not_null(text);
    size_t o = (size_t)sprintf(text, "k,v\nx,\"");
    for (size_t i = 0; i < big; i++) text[o++] = (char)(i % 7 == 0 ? '\n' : i % 5 == 0 ? ',' : 'a' + (int)(i % 26));
    o += (size_t)sprintf(text + o, "\"\ny,z\n");
    imp_mem_src m = {(const uint8_t *)text, o, 0, -1};
    imp_reader *r = imp_reader_new(IMP_CSV, imp_mem_read, &m, 0);
    imp_record rec;
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_null(rec.error);
    cr_assert_eq(rec.n_fields, 2);
    cr_assert_eq(rec.fields[1].len, big);
    cr_assert_eq(memcmp(rec.fields[1].p, text + 7, big), 0);
    size_t lfs = 0;
    for (size_t i = 0; i < big; i++) lfs += text[7 + i] == '\n';
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_eq(rec.line, 3 + lfs, "line %llu, want %zu", (unsigned long long)rec.line, 3 + lfs);
    cr_assert_eq(imp_reader_next(r, &rec), 0);
    cr_assert_eq(imp_reader_offset(r), o);
    imp_reader_free(r);
    free(text);
}

Test(csv, record_over_the_limit_is_rejected_and_reading_goes_on)
{
    static const char text[] = "k,v\n1,\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\naaaaaaaaaa\n2,b\n";
    imp_mem_src m = {(const uint8_t *)text, sizeof text - 1, 0, -1};
    imp_reader *r = imp_reader_new(IMP_CSV, imp_mem_read, &m, 16);
    imp_record rec;
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_not_null(rec.error);
    cr_assert_eq(rec.line, 2);
    cr_assert(strstr(rec.error, "longer than 16 bytes"), "%s", rec.error);
    /* reading resumes at line 3, a record of its own */
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_eq(rec.line, 3);
    cr_assert_null(rec.error);
    cr_assert_eq(imp_reader_next(r, &rec), 1);
    cr_assert_null(rec.error);
    cr_assert_eq(rec.line, 4);
    cr_assert_eq(imp_reader_next(r, &rec), 0);
    imp_reader_free(r);
}

/* ---- TSV ------------------------------------------------------------------------------ */

Test(tsv, escapes)
{
    static const char text[] = "a\tb\tc\n1\tx\\ty\\nz\\\\\t\\0\\x41\\xff\\q\\\r\n\n2\t\t\n";
    BOTH(IMP_TSV, text, r, n, {
        cr_assert_eq(n, 3);
        cr_assert_eq(r[1].n, 3);
        FIELD_EQ(r[1], 0, "1");
        FIELD_EQ(r[1], 1, "x\ty\nz\\");
        FIELD_EQ(r[1], 2, "\0A\xff\\q\\");
        cr_assert_eq(r[2].line, 4);
        cr_assert_eq(r[2].n, 3);
        FIELD_EQ(r[2], 1, "");
        FIELD_EQ(r[2], 2, "");
    });
}

Test(tsv, quotes_are_data)
{
    static const char text[] = "a\tb\n\"x\ty\"\t\"\n";
    BOTH(IMP_TSV, text, r, n, {
        cr_assert_eq(n, 2);
        cr_assert_eq(r[1].n, 3);
        FIELD_EQ(r[1], 0, "\"x");
        FIELD_EQ(r[1], 2, "\"");
    });
}

/* ---- JSON Lines ----------------------------------------------------------------------- */

static int extract(const char *line, char *const *names, size_t n, imp_value *vals, imp_buf *sc, char *why)
{
    return imp_jsonl_extract((const uint8_t *)line, strlen(line), names, n, vals, sc, why, 256);
}

#define VAL_EQ(v, lit)                                                                                  \
    do {                                                                                                \
        cr_assert((v).present, "absent, want \"%s\"", lit);                                            \
        cr_assert_eq((v).len, sizeof(lit) - 1, "%zu bytes \"%.*s\", want \"%s\"", (v).len, (int)(v).len, \
                     (const char *)(v).p, lit);                                                         \
        cr_assert_eq(memcmp((v).p, lit, sizeof(lit) - 1), 0);                                           \
    } while (0)

Test(jsonl, types)
{
    char *names[] = {"s", "i", "f", "t", "f2", "nul", "missing", "obj", "arr", "e"};
    imp_value v[10];
    imp_buf sc = {0};
    char why[256];
    const char *line = " {\"s\": \"a\\\"b\\\\c\\/\\n\", \"i\":-12, \"f\" : 1.50e3, \"t\":true, \"f2\":false,"
                       " \"nul\":null, \"obj\":{\"x\":[1,\"}\"]}, \"arr\":[ ], \"e\":\"\"} ";
    cr_assert_eq(extract(line, names, 10, v, &sc, why), 0, "%s", why);
    VAL_EQ(v[0], "a\"b\\c/\n");
    VAL_EQ(v[1], "-12");
    VAL_EQ(v[2], "1.50e3");
    VAL_EQ(v[3], "true");
    VAL_EQ(v[4], "false");
    cr_assert_not(v[5].present);
    cr_assert_not(v[6].present);
    cr_assert(v[7].present && v[7].nested);
    cr_assert(v[8].present && v[8].nested);
    VAL_EQ(v[9], "");
    imp_buf_free(&sc);
}

Test(jsonl, binary_and_unicode_escapes_round_trip)
{
    char *names[] = {"b", "u"};
    imp_value v[2];
    imp_buf sc = {0};
    char why[256];
    cr_assert_eq(extract("{\"b\":\"\\u0000x\\u0001\\u00ff\\u0000\",\"u\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}", names, 2, v,
                         &sc, why), 0, "%s", why);
    VAL_EQ(v[0], "\0x\x01\xc3\xbf\0");
    VAL_EQ(v[1], "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    imp_buf_free(&sc);
}

Test(jsonl, first_of_duplicate_members_and_escaped_names)
{
    char *names[] = {"a", "k\"y"};
    imp_value v[2];
    imp_buf sc = {0};
    char why[256];
    cr_assert_eq(extract("{\"a\":\"1\",\"k\\\"y\":2,\"a\":\"2\"}", names, 2, v, &sc, why), 0, "%s", why);
    VAL_EQ(v[0], "1");
    VAL_EQ(v[1], "2");
    imp_buf_free(&sc);
}

Test(jsonl, rejects)
{
    char *names[] = {"a"};
    imp_value v[1];
    imp_buf sc = {0};
    char why[256];
    cr_assert_eq(extract("[1,2]", names, 1, v, &sc, why), -1);
    cr_assert_str_eq(why, "not a JSON object");
    cr_assert_eq(extract("\"str\"", names, 1, v, &sc, why), -1);
    cr_assert_eq(extract("{\"a\":1", names, 1, v, &sc, why), -1);
    cr_assert(strstr(why, "invalid JSON"), "%s", why);
    cr_assert_eq(extract("{\"a\":1} x", names, 1, v, &sc, why), -1);
    cr_assert(strstr(why, "text after"), "%s", why);
    cr_assert_eq(extract("{\"a\":\"\\ud800\"}", names, 1, v, &sc, why), -1, "a lone surrogate is invalid");
    cr_assert_eq(extract("{'a':1}", names, 1, v, &sc, why), -1);
    imp_buf_free(&sc);
}

Test(jsonl, lines_blank_and_numbered)
{
    static const char text[] = "{\"a\":1}\n   \n\r\n{\"a\":\n{\"a\":\"x\\ny\"}\r\n";
    BOTH(IMP_JSONL, text, r, n, {
        cr_assert_eq(n, 3);
        cr_assert_eq(r[0].line, 1);
        cr_assert_eq(r[1].line, 4);
        cr_assert_str_eq(r[1].raw, "{\"a\":");
        cr_assert_eq(r[2].line, 5);
        cr_assert_str_eq(r[2].raw, "{\"a\":\"x\\ny\"}");
    });
}

/* ---- mapping -------------------------------------------------------------------------- */

Test(map, parse_and_composite_key)
{
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "a,b", "c=cf:q1,a=cf,d=cf2:", "t", "::", err, sizeof err), 0, "%s", err);
    cr_assert_eq(m.n_fields, 5); /* a b c d t */
    cr_assert_eq(m.n_cols, 3);
    cr_assert_str_eq(m.cols[1].family, "cf");
    cr_assert_eq(m.cols[1].qual_len, 1);
    cr_assert_eq(memcmp(m.cols[1].qual, "a", 1), 0);
    cr_assert_eq(m.cols[2].qual_len, 0);
    imp_value v[5] = {
        {(const uint8_t *)"x", 1, true, false}, {(const uint8_t *)"y\0z", 3, true, false},
        {(const uint8_t *)"C", 1, true, false}, {(const uint8_t *)"", 0, true, false},
        {(const uint8_t *)"1700000000000000", 16, true, false},
    };
    imp_row row = {0};
    char why[256];
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), 0, "%s", why);
    cr_assert_eq(row.key.len, 6);
    cr_assert_eq(memcmp(row.key.p, "x::y\0z", 6), 0);
    cr_assert_eq(row.ts, 1700000000000000);
    cr_assert_eq(row.n_cells, 3, "an empty value is a cell unless --skip-empty");
    m.skip_empty = true;
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), 0, "%s", why);
    cr_assert_eq(row.n_cells, 2);
    imp_row_free(&row);
    imp_map_free(&m);
}

Test(map, parse_errors)
{
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "", "a=cf", NULL, NULL, err, sizeof err), -1);
    imp_map_free(&m);
    cr_assert_eq(imp_map_parse(&m, "k", "a", NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "FIELD=family"), "%s", err);
    imp_map_free(&m);
    cr_assert_eq(imp_map_parse(&m, "k", "a=c f:x", NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "family"), "%s", err);
    imp_map_free(&m);
    cr_assert_eq(imp_map_parse(&m, "k", "a=cf:x,b=cf:x", NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "mapped twice"), "%s", err);
    imp_map_free(&m);
    cr_assert_eq(imp_map_parse(&m, "k,,j", "a=cf", NULL, NULL, err, sizeof err), -1);
    imp_map_free(&m);
}

Test(map, row_rejects)
{
    imp_map m = {0};
    char err[256], why[256];
    cr_assert_eq(imp_map_parse(&m, "k", "v=cf:v", "ts", NULL, err, sizeof err), 0, "%s", err);
    imp_row row = {0};
    imp_value v[3] = {{(const uint8_t *)"key", 3, true, false}, {(const uint8_t *)"val", 3, true, false},
                      {(const uint8_t *)"12", 2, true, false}};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), 0, "%s", why);
    v[2] = (imp_value){(const uint8_t *)"12x", 3, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert(strstr(why, "bad timestamp \"12x\""), "%s", why);
    v[2] = (imp_value){(const uint8_t *)"-1", 2, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    v[2] = (imp_value){(const uint8_t *)"9223372036854775807", 19, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1, "INT64_MAX is not a timestamp");
    v[2] = (imp_value){(const uint8_t *)"9223372036854775806", 19, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), 0, "%s", why);
    v[0] = (imp_value){0};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert_str_eq(why, "missing row key field \"k\"");
    v[0] = (imp_value){(const uint8_t *)"", 0, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert_str_eq(why, "empty row key");
    static uint8_t big[IMP_MAX_ROW_KEY + 1];
    memset(big, 'k', sizeof big);
    v[0] = (imp_value){big, sizeof big, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert(strstr(why, "row key of 4097 bytes"), "%s", why);
    v[0] = (imp_value){big, IMP_MAX_ROW_KEY, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), 0, "%s", why);
    v[1] = (imp_value){(const uint8_t *)"{}", 2, true, true};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert(strstr(why, "object or array"), "%s", why);
    v[1] = (imp_value){0};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    cr_assert_str_eq(why, "no mapped column has a value");
    m.max_row = 100;
    v[1] = (imp_value){big, 200, true, false};
    cr_assert_eq(imp_map_row(&m, v, &row, why, sizeof why), -1);
    imp_row_free(&row);
    imp_map_free(&m);
}

/* ---- sources (header + mapping) --------------------------------------------------------- */

Test(source, csv_header_fields_and_reject_lines)
{
    static const char text[] = "v,id,x\n"
                               "a,1,q\n"
                               "b,2\n"          /* line 3: too few fields */
                               "c,,q\n"         /* line 4: empty key */
                               "\"d\ne\",3,q\n" /* lines 5-6 */
                               "f,4,q,z\n";     /* line 7: too many */
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "id", "v=cf:v", NULL, NULL, err, sizeof err), 0);
    imp_mem_src ms = {(const uint8_t *)text, sizeof text - 1, 0, -1};
    imp_source s;
    cr_assert_eq(imp_source_open(&s, IMP_CSV, &m, imp_mem_read, &ms, 0, err, sizeof err), 0, "%s", err);
    int want[] = {IMP_SRC_ROW, IMP_SRC_REJECT, IMP_SRC_REJECT, IMP_SRC_ROW, IMP_SRC_REJECT, IMP_SRC_END};
    uint64_t lines[] = {2, 3, 4, 5, 7};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int r = imp_source_next(&s);
        cr_assert_eq(r, want[i], "record %zu: %d, want %d (%s)", i, r, want[i], s.why);
        if (r != IMP_SRC_END) cr_assert_eq(s.rec.line, lines[i]);
        if (i == 1) cr_assert_str_eq(s.why, "2 fields, the header has 3");
        if (i == 3) {
            cr_assert_eq(s.row.key.len, 1);
            cr_assert_eq(s.row.cells[0].value_len, 3);
            cr_assert_eq(memcmp(s.row.cells[0].value, "d\ne", 3), 0);
        }
    }
    imp_source_close(&s);
    imp_map_free(&m);
}

Test(source, header_must_name_the_mapped_fields)
{
    static const char text[] = "a,b\n1,2\n";
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "id", "a=cf", NULL, NULL, err, sizeof err), 0);
    imp_mem_src ms = {(const uint8_t *)text, sizeof text - 1, 0, -1};
    imp_source s;
    cr_assert_eq(imp_source_open(&s, IMP_CSV, &m, imp_mem_read, &ms, 0, err, sizeof err), -1);
    cr_assert(strstr(err, "field \"id\" is not in the header (a,b)"), "%s", err);
    imp_source_close(&s);
    imp_map_free(&m);
}

Test(source, empty_input)
{
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "id", "a=cf", NULL, NULL, err, sizeof err), 0);
    imp_mem_src ms = {(const uint8_t *)"", 0, 0, -1};
    imp_source s;
    cr_assert_eq(imp_source_open(&s, IMP_CSV, &m, imp_mem_read, &ms, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_END);
    imp_source_close(&s);
    imp_map_free(&m);
}

Test(source, jsonl_rows)
{
    static const char text[] = "{\"id\":7,\"v\":\"\\u0000\"}\n{\"v\":\"x\"}\nnot json\n{\"id\":\"k\",\"v\":[1]}\n";
    imp_map m = {0};
    char err[256];
    cr_assert_eq(imp_map_parse(&m, "id", "v=cf", NULL, NULL, err, sizeof err), 0);
    imp_mem_src ms = {(const uint8_t *)text, sizeof text - 1, 0, -1};
    imp_source s;
    cr_assert_eq(imp_source_open(&s, IMP_JSONL, &m, imp_mem_read, &ms, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_ROW);
    cr_assert_eq(s.row.key.len, 1);
    cr_assert_eq(s.row.key.p[0], '7');
    cr_assert_eq(s.row.cells[0].value_len, 1);
    cr_assert_eq(s.row.cells[0].value[0], 0);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_REJECT);
    cr_assert_eq(s.rec.line, 2);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_REJECT);
    cr_assert_eq(s.rec.line, 3);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_REJECT);
    cr_assert_eq(s.rec.line, 4);
    cr_assert_eq(imp_source_next(&s), IMP_SRC_END);
    imp_source_close(&s);
    imp_map_free(&m);
}

/* ---- rejects escaping, splits ------------------------------------------------------------ */

Test(escape, one_line)
{
    char out[64];
    imp_escape((const uint8_t *)"a\tb\nc\\\0\x7f\xc3\xa9", 10, out, sizeof out);
    cr_assert_str_eq(out, "a\\tb\\nc\\\\\\x00\\x7f\xc3\xa9");
    char small[12];
    imp_escape((const uint8_t *)"0123456789abcdef", 16, small, sizeof small);
    cr_assert_str_eq(small, "01234567...");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(imp_escape_write(f, (const uint8_t *)"x\ty\r\0", 5), 0);
    fclose(f);
    cr_assert_str_eq(buf, "x\\ty\\r\\x00");
    free(buf);
}

Test(split, quantiles_of_the_sample)
{
    imp_sample s;
    cr_assert_eq(imp_sample_init(&s, 1000, 42), 0);
    char k[16];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(k, sizeof k, "k%06d", (i * 7919) % 100000);
        cr_assert_eq(imp_sample_add(&s, k, (size_t)n), 0);
    }
    cr_assert_eq(s.n, 1000);
    cr_assert_eq(s.seen, 100000);
    bt_key *sp = NULL;
    size_t n = 0;
    cr_assert_eq(imp_pick_splits(&s, 4, &sp, &n), 0);
    cr_assert_eq(n, 3);
    /* roughly at 25%, 50%, 75% of k000000..k099999 */
    int want[] = {25000, 50000, 75000};
    for (size_t i = 0; i < n; i++) {
        char key[16];
        cr_assert_lt(sp[i].len, sizeof key);
        memcpy(key, sp[i].data, sp[i].len);
        key[sp[i].len] = '\0';
        int at = atoi(key + 1);
        cr_assert(abs(at - want[i]) < 8000, "split %zu at %d", i, at);
    }
    free(sp);
    imp_sample_free(&s);
    cr_assert_eq(imp_tablets_for(0, 64 << 20, 64), 1);
    cr_assert_eq(imp_tablets_for((64 << 20) + 1, 64 << 20, 64), 2);
    cr_assert_eq(imp_tablets_for(1ull << 40, 64 << 20, 64), 64);
}

Test(split, few_distinct_keys)
{
    imp_sample s;
    cr_assert_eq(imp_sample_init(&s, 100, 1), 0);
    for (int i = 0; i < 50; i++) imp_sample_add(&s, i % 2 ? "b" : "a", 1);
    bt_key *sp = NULL;
    size_t n = 0;
    cr_assert_eq(imp_pick_splits(&s, 8, &sp, &n), 0);
    cr_assert_eq(n, 2, "only a and b can split (got %zu)", n);
    free(sp);
    imp_sample_free(&s);
}
