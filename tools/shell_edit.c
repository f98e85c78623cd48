/* tools/shell_edit.c: bt-shell's interactive loop over libedit (its
 * readline-compatible interface): the prompt, persistent history and tab
 * completion.
 *
 * Completion looks at the words before the cursor (since the last ';'):
 *   word 1                      command names
 *   help <...>                  command names
 *   lock <...>                  ls, cat
 *   alter <table> <...>         add, drop, gc
 *   <cmd> <...> for table cmds  table names (listed from the cluster)
 *   later words of put, get, scan, delete, incr, append
 *                               the table's families as "family:" (also
 *                               after '=' or ',': "columns=cf:a,c<TAB>");
 *                               alter drop/gc: "family"
 * Table names and families are fetched at each TAB (one master call), so
 * they are never stale.
 */
#include "tools/shell_edit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <editline/readline.h>

/* ---- history ------------------------------------------------------------------ */

bool sh_history_path(char *buf, size_t cap)
{
    const char *env = getenv("BT_SHELL_HISTORY");
    if (env) {
        if (!*env) return false;
        snprintf(buf, cap, "%s", env);
        return true;
    }
    const char *home = getenv("HOME");
    if (!home || !*home) return false;
    snprintf(buf, cap, "%s/.bt_shell_history", home);
    return true;
}

/* ---- completion ------------------------------------------------------------------- */

static sh_ctx *g_ctx;             /* the context completions read from */
static char **g_cands;            /* candidates of the current completion */
static size_t g_ncands;

static void cands_free(void)
{
    for (size_t i = 0; i < g_ncands; i++) free(g_cands[i]);
    free(g_cands);
    g_cands = NULL;
    g_ncands = 0;
}

static void cands_add(const char *s, const char *suffix)
{
    char **v = realloc(g_cands, (g_ncands + 1) * sizeof *v);
    if (!v) return;
    g_cands = v;
    size_t n = strlen(s) + strlen(suffix) + 1;
    char *x = malloc(n);
    if (!x) return;
    snprintf(x, n, "%s%s", s, suffix);
    g_cands[g_ncands++] = x;
}

static char *generator(const char *text, int state)
{
    static size_t at;
    if (state == 0) at = 0;
    size_t tl = strlen(text);
    while (at < g_ncands) {
        const char *s = g_cands[at++];
        if (!strncmp(s, text, tl)) return strdup(s);
    }
    return NULL;
}

static void add_commands(void)
{
    size_t n;
    const sh_command *cmds = sh_commands(&n);
    for (size_t i = 0; i < n; i++) cands_add(cmds[i].name, "");
}

static void add_tables(void)
{
    char **names = NULL;
    size_t n = 0;
    if (sh_list_tables(g_ctx, &names, &n) == BT_OK) {
        for (size_t i = 0; i < n; i++) cands_add(names[i], "");
        bt_free_names(names, n);
    }
}

static void add_families(const char *table, const char *suffix)
{
    char **names = NULL;
    size_t n = 0;
    if (sh_list_families(g_ctx, table, &names, &n) == BT_OK) {
        for (size_t i = 0; i < n; i++) cands_add(names[i], suffix);
        bt_free_names(names, n);
    }
}

/* The blank-separated words of line[0..end) after its last ';' (quotes are
 * not interpreted: good enough to find the command and table). */
static size_t split_words(const char *line, int end, char words[][128], size_t max)
{
    int from = 0;
    for (int i = 0; i < end; i++)
        if (line[i] == ';') from = i + 1;
    size_t n = 0;
    int i = from;
    while (i < end && n < max) {
        while (i < end && (line[i] == ' ' || line[i] == '\t')) i++;
        int s = i;
        while (i < end && line[i] != ' ' && line[i] != '\t') i++;
        if (i > s) snprintf(words[n++], 128, "%.*s", i - s, line + s);
    }
    return n;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    rl_completion_append_character = ' ';
    cands_free();
    char words[8][128];
    size_t n = split_words(rl_line_buffer, start, words, 8); /* complete words before the cursor's word */
    if (n == 0) {
        add_commands();
    } else {
        const sh_command *d = sh_command_find(words[0]);
        if (!d) return NULL;
        if (d->complete == SH_COMPLETE_COMMAND && n == 1) add_commands();
        else if (!strcmp(d->name, "lock") && n == 1) { cands_add("ls", ""); cands_add("cat", ""); }
        else if (d->complete == SH_COMPLETE_TABLE && n == 1) add_tables();
        else if (!strcmp(d->name, "alter") && n == 2) { cands_add("add", ""); cands_add("drop", ""); cands_add("gc", ""); }
        else if (!strcmp(d->name, "alter") && n >= 3 && (!strcmp(words[2], "drop") || (!strcmp(words[2], "gc") && n == 3)))
            add_families(words[1], "");
        else if (d->complete == SH_COMPLETE_TABLE && n >= 2) {
            bool data = !strcmp(d->name, "put") || !strcmp(d->name, "get") || !strcmp(d->name, "delete") ||
                        !strcmp(d->name, "incr") || !strcmp(d->name, "append") || !strcmp(d->name, "scan");
            if (data && (n >= 3 || !strcmp(d->name, "scan"))) {
                add_families(words[1], ":");
                rl_completion_append_character = '\0';
            }
        }
    }
    if (!g_ncands) return NULL;
    return rl_completion_matches(text, generator);
}

/* ---- the loop ---------------------------------------------------------------------- */

static bool ask_readline(void *arg, const char *question)
{
    (void)arg;
    char *ans = readline(question);
    bool yes = ans && (!strcmp(ans, "y") || !strcmp(ans, "Y") || !strcmp(ans, "yes"));
    free(ans);
    return yes;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

int sh_interactive(sh_ctx *c)
{
    g_ctx = c;
    c->ask = ask_readline;
    c->ask_arg = NULL;
    char hist[4096];
    bool have_hist = sh_history_path(hist, sizeof hist);
    rl_readline_name = "bt-shell";
    /* '=' and ',' end a word too, so "columns=c<TAB>" offers families */
    rl_basic_word_break_characters = " \t\n;=,";
    rl_completer_word_break_characters = (char *)" \t\n;=,";
    rl_attempted_completion_function = complete;
    using_history();
    stifle_history(1000);
    if (have_hist) read_history(hist);
    int code = 0, failed = 0;
    for (;;) {
        char *line = readline("bt> ");
        if (!line) {
            fputc('\n', stdout);
            break;
        }
        if (!blank(line)) {
            add_history(line);
            if (have_hist && write_history(hist) != 0 && have_hist) {
                fprintf(stderr, "bt-shell: cannot write history to %s (continuing without)\n", hist);
                have_hist = false;
            }
        }
        int rc = sh_run_text(c, line, strlen(line), 1, &failed);
        free(line);
        if (rc == SH_QUIT) break;
        c->no_cluster = false; /* interactive: keep going, the next command retries */
    }
    cands_free();
    return code;
}
