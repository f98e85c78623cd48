/* tests/unit/test_shell_parse.c: bt-shell's command-line syntax
 * (shell/parse.h) and output formats (shell/format.h).
 *
 * Error tests assert the whole message, column included, because the
 * message is what a user reads.  The round-trip property runs a fixed seed,
 * so a failure reproduces; it prints the failing case as hex.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/coding.h"
#include "common/status.h"
#include "shell/format.h"
#include "shell/parse.h"

/* ---- helpers --------------------------------------------------------------- */

static sh_cmd *g_cmds;
static size_t g_n;
static char g_err[256];

static void cleanup(void)
{
    sh_cmds_free(g_cmds, g_n);
    g_cmds = NULL;
    g_n = 0;
}

TestSuite(shell_parse, .fini = cleanup);
TestSuite(shell_format);

/* Parses text (line 1) and asserts success; the result is in g_cmds/g_n. */
static void parse_ok(const char *text)
{
    cleanup();
    int rc = sh_parse(text, strlen(text), 1, &g_cmds, &g_n, g_err, sizeof g_err);
    cr_assert_eq(rc, BT_OK, "parse of [%s] failed: %s", text, g_err);
}

/* Parses text at `line` and asserts BT_EINVAL with exactly `msg`. */
static void parse_err_at(const char *text, int line, const char *msg)
{
    cleanup();
    sh_cmd *cmds = (sh_cmd *)1;
    size_t n = 99;
    int rc = sh_parse(text, strlen(text), line, &cmds, &n, g_err, sizeof g_err);
    cr_assert_eq(rc, BT_EINVAL, "parse of [%s] should fail", text);
    cr_assert_null(cmds);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(g_err, msg);
}

static void parse_err(const char *text, const char *msg) { parse_err_at(text, 1, msg); }

static void assert_word(const sh_word *w, const char *bytes, size_t n, long eq, int col)
{
    cr_assert_eq(w->n, n, "word length %zu, want %zu", w->n, n);
    cr_assert(memcmp(w->s, bytes, n) == 0, "word bytes differ");
    cr_assert_eq(w->s[n], '\0', "word not NUL-terminated");
    cr_assert_eq(w->eq, eq, "eq %ld, want %ld", w->eq, eq);
    if (col) cr_assert_eq(w->col, col, "col %d, want %d", w->col, col);
}

#define WORD(w, lit, eq, col) assert_word((w), (lit), sizeof(lit) - 1, (eq), (col))

static char *escape(const void *p, size_t n, bool quote_eq)
{
    bt_buf b = {0};
    cr_assert_eq(sh_escape(p, n, quote_eq, &b), BT_OK);
    cr_assert_eq(bt_buf_append(&b, "", 1), BT_OK);
    return (char *)b.data;
}

/* ---- words, commands, comments ------------------------------------------- */

Test(shell_parse, empty_input_gives_no_commands)
{
    const char *empty[] = { "", "   ", "\t \t", ";", " ; ;; ", "# just a comment", "  # c ; d",
                            "\n\n", "; # x\n  ;\n" };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        parse_ok(empty[i]);
        cr_assert_eq(g_n, 0, "[%s] gave %zu commands", empty[i], g_n);
        cr_assert_null(g_cmds);
    }
    cr_assert_eq(sh_parse(NULL, 0, 1, &g_cmds, &g_n, g_err, sizeof g_err), BT_OK);
    cr_assert_eq(g_n, 0);
}

Test(shell_parse, words_split_on_blanks_with_columns)
{
    parse_ok("put  r1\tcf:a=1   ");
    cr_assert_eq(g_n, 1);
    cr_assert_eq(g_cmds[0].n, 3);
    cr_assert_eq(g_cmds[0].line, 1);
    WORD(&g_cmds[0].w[0], "put", -1, 1);
    WORD(&g_cmds[0].w[1], "r1", -1, 6);
    WORD(&g_cmds[0].w[2], "cf:a=1", 4, 9);
}

Test(shell_parse, semicolons_separate_commands)
{
    parse_ok("a b; c ;d;;e");
    cr_assert_eq(g_n, 4);
    cr_assert_eq(g_cmds[0].n, 2);
    WORD(&g_cmds[0].w[1], "b", -1, 3);
    WORD(&g_cmds[1].w[0], "c", -1, 6);
    WORD(&g_cmds[2].w[0], "d", -1, 9);
    WORD(&g_cmds[3].w[0], "e", -1, 12);
}

Test(shell_parse, semicolon_inside_quotes_is_literal)
{
    parse_ok("put r \"a;b\" 'c;d' e\";\"f");
    cr_assert_eq(g_n, 1);
    cr_assert_eq(g_cmds[0].n, 5);
    WORD(&g_cmds[0].w[2], "a;b", -1, 7);
    WORD(&g_cmds[0].w[3], "c;d", -1, 13);
    WORD(&g_cmds[0].w[4], "e;f", -1, 19);
}

Test(shell_parse, comments)
{
    parse_ok("get r # rest; is \"not' a command");
    cr_assert_eq(g_n, 1);
    cr_assert_eq(g_cmds[0].n, 2);

    /* '#' only starts a comment at the start of a word */
    parse_ok("get a#b c#");
    cr_assert_eq(g_cmds[0].n, 3);
    WORD(&g_cmds[0].w[1], "a#b", -1, 5);
    WORD(&g_cmds[0].w[2], "c#", -1, 9);

    parse_ok("get \"#x\" '#y';#z");
    cr_assert_eq(g_n, 1);
    WORD(&g_cmds[0].w[1], "#x", -1, 5);
    WORD(&g_cmds[0].w[2], "#y", -1, 10);

    /* a comment ends at the newline */
    parse_ok("a # one\nb");
    cr_assert_eq(g_n, 2);
    WORD(&g_cmds[1].w[0], "b", -1, 1);
    cr_assert_eq(g_cmds[1].line, 2);
}

Test(shell_parse, quotes_inside_words)
{
    parse_ok("put r cf:q=\"a b\"");
    cr_assert_eq(g_cmds[0].n, 3);
    WORD(&g_cmds[0].w[2], "cf:q=a b", 4, 7);

    parse_ok("x 'a b'\"c d\"e");
    cr_assert_eq(g_cmds[0].n, 2);
    WORD(&g_cmds[0].w[1], "a bc de", -1, 3);

    parse_ok("x \"\" '' a\"\"b");
    cr_assert_eq(g_cmds[0].n, 4);
    WORD(&g_cmds[0].w[1], "", -1, 3);
    WORD(&g_cmds[0].w[2], "", -1, 6);
    WORD(&g_cmds[0].w[3], "ab", -1, 9);
}

Test(shell_parse, eq_is_the_first_unquoted_equals)
{
    parse_ok("x a=b \"a=b\" k=\"x=y\" 'k=v' \"k\"=v a==b =v v= \"a=\"b=c");
    sh_word *w = g_cmds[0].w;
    cr_assert_eq(g_cmds[0].n, 10);
    WORD(&w[1], "a=b", 1, 3);
    WORD(&w[2], "a=b", -1, 7);
    WORD(&w[3], "k=x=y", 1, 13);
    WORD(&w[4], "k=v", -1, 21);
    WORD(&w[5], "k=v", 1, 27);
    WORD(&w[6], "a==b", 1, 33);
    WORD(&w[7], "=v", 0, 38);
    WORD(&w[8], "v=", 1, 41);
    WORD(&w[9], "a=b=c", 3, 44); /* the quoted '=' at 1 does not count */
}

Test(shell_parse, kv_views)
{
    parse_ok("x cf:q=\"a b\" plain v= \"q=1\"");
    const char *k, *v;
    size_t kl, vl;
    cr_assert(sh_kv(&g_cmds[0].w[1], &k, &kl, &v, &vl));
    cr_assert_eq(kl, 4);
    cr_assert(memcmp(k, "cf:q", 4) == 0);
    cr_assert_eq(vl, 3);
    cr_assert(memcmp(v, "a b", 3) == 0);
    cr_assert_not(sh_kv(&g_cmds[0].w[2], &k, &kl, &v, &vl));
    cr_assert(sh_kv(&g_cmds[0].w[3], &k, &kl, &v, &vl));
    cr_assert_eq(kl, 1);
    cr_assert_eq(vl, 0);
    cr_assert_not(sh_kv(&g_cmds[0].w[4], &k, &kl, &v, &vl));
}

Test(shell_parse, double_quote_escapes_are_decoded)
{
    parse_ok("x \"\\\\ \\\" \\n \\t \\r \\0 \\x41 \\xfF \\x00\"");
    static const char want[] = "\\ \" \n \t \r \0 A \xff \0";
    WORD(&g_cmds[0].w[1], want, -1, 3);
}

Test(shell_parse, single_quotes_and_bare_backslashes_are_literal)
{
    parse_ok("x 'a\\nb\\' c\\d \"'\" '\"'");
    cr_assert_eq(g_cmds[0].n, 5);
    WORD(&g_cmds[0].w[1], "a\\nb\\", -1, 3);
    WORD(&g_cmds[0].w[2], "c\\d", -1, 11);
    WORD(&g_cmds[0].w[3], "'", -1, 15);
    WORD(&g_cmds[0].w[4], "\"", -1, 19);
}

Test(shell_parse, words_are_binary_safe)
{
    static const char text[] = "put r\x01 \xff\xfe cf:q=\"\\x00\\x00\"";
    cleanup();
    cr_assert_eq(sh_parse(text, sizeof text - 1, 1, &g_cmds, &g_n, g_err, sizeof g_err), BT_OK);
    WORD(&g_cmds[0].w[1], "r\x01", -1, 5);
    WORD(&g_cmds[0].w[2], "\xff\xfe", -1, 8);
    WORD(&g_cmds[0].w[3], "cf:q=\0\0", 4, 11);

    /* len, not a NUL, ends the text */
    cleanup();
    cr_assert_eq(sh_parse("ab\0cd", 5, 1, &g_cmds, &g_n, g_err, sizeof g_err), BT_OK);
    WORD(&g_cmds[0].w[0], "ab\0cd", -1, 1);
    cleanup();
    cr_assert_eq(sh_parse("abcdef", 3, 1, &g_cmds, &g_n, g_err, sizeof g_err), BT_OK);
    WORD(&g_cmds[0].w[0], "abc", -1, 1);
}

Test(shell_parse, newlines_separate_commands_and_count_lines)
{
    static const char text[] = "a\nb c\r\n  d \"x\ny\" e\nf";
    cleanup();
    cr_assert_eq(sh_parse(text, sizeof text - 1, 5, &g_cmds, &g_n, g_err, sizeof g_err), BT_OK);
    cr_assert_eq(g_n, 4);
    cr_assert_eq(g_cmds[0].line, 5);
    cr_assert_eq(g_cmds[1].line, 6);
    WORD(&g_cmds[1].w[1], "c", -1, 3);
    cr_assert_eq(g_cmds[2].line, 7);
    cr_assert_eq(g_cmds[2].n, 3);
    WORD(&g_cmds[2].w[0], "d", -1, 3);
    WORD(&g_cmds[2].w[1], "x\ny", -1, 5);
    WORD(&g_cmds[2].w[2], "e", -1, 4); /* line 8, after the quoted newline */
    cr_assert_eq(g_cmds[3].line, 9);
}

Test(shell_parse, columns_count_characters_not_bytes)
{
    parse_ok("é 表 x");
    WORD(&g_cmds[0].w[1], "表", -1, 3);
    WORD(&g_cmds[0].w[2], "x", -1, 5);
    parse_err("é 'x", "line 1, column 3: unterminated single quote in \"'x\"");
}

/* ---- errors -------------------------------------------------------------- */

Test(shell_parse, unterminated_double_quote)
{
    parse_err("put r cf:q=\"abc", "line 1, column 12: unterminated double quote in \"cf:q=\\\"abc\"");
    parse_err("\"", "line 1, column 1: unterminated double quote in \"\\\"\"");
    /* a backslash cannot escape the end of the text */
    parse_err("x \"abc\\", "line 1, column 3: unterminated double quote in \"\\\"abc\\\\\"");
    /* the token runs over ';' and blanks inside the open quote, not a trailing newline */
    parse_err("x a\"b; c\n", "line 1, column 4: unterminated double quote in \"a\\\"b; c\"");
    /* a single quote inside double quotes does not close it */
    parse_err("x \"it's", "line 1, column 3: unterminated double quote in \"\\\"it's\"");
}

Test(shell_parse, unterminated_single_quote)
{
    parse_err("get 'abc", "line 1, column 5: unterminated single quote in \"'abc\"");
    parse_err("get ab'c\\\" d", "line 1, column 7: unterminated single quote in \"ab'c\\\\\\\" d\"");
}

Test(shell_parse, bad_escape)
{
    parse_err("put r \"a\\qb\"",
              "line 1, column 9: bad escape \\q (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN) in "
              "\"\\\"a\\\\qb\\\"\"");
    parse_err("x \"\\'\"",
              "line 1, column 4: bad escape \\' (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN) in "
              "\"\\\"\\\\'\\\"\"");
    parse_err("x \"\\\x01\"",
              "line 1, column 4: bad escape: \\ before byte 0x01 (use \\\\, \\\", \\n, \\t, \\r, \\0 or "
              "\\xNN) in \"\\\"\\\\\\x01\\\"\"");
    /* the token is the whole word, past the bad escape */
    parse_err("x k=\"\\a\"tail more",
              "line 1, column 6: bad escape \\a (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN) in "
              "\"k=\\\"\\\\a\\\"tail\"");
}

Test(shell_parse, short_hex_escape)
{
    parse_err("x \"\\x4\"", "line 1, column 4: \\x needs two hex digits (\\xNN) in \"\\\"\\\\x4\\\"\"");
    parse_err("x \"\\x\"", "line 1, column 4: \\x needs two hex digits (\\xNN) in \"\\\"\\\\x\\\"\"");
    parse_err("x \"\\xg1\"", "line 1, column 4: \\x needs two hex digits (\\xNN) in \"\\\"\\\\xg1\\\"\"");
    parse_err("x \"ab\\x4", "line 1, column 6: \\x needs two hex digits (\\xNN) in \"\\\"ab\\\\x4\"");
}

Test(shell_parse, error_names_the_line)
{
    parse_err_at("ok 1\nok 2; put 'x\n", 7, "line 8, column 11: unterminated single quote in \"'x\"");
    /* a quote opened on one line reports that line */
    parse_err_at("a \"x\ny\" b\n  'z", 1, "line 3, column 3: unterminated single quote in \"'z\"");
    parse_err_at("a \"x\ny\\q\"", 1,
                 "line 2, column 2: bad escape \\q (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN) in "
                 "\"\\\"x\\ny\\\\q\\\"\"");
}

Test(shell_parse, error_token_is_cut_at_40_characters)
{
    char text[128];
    snprintf(text, sizeof text, "put \"%s", "0123456789012345678901234567890123456789XYZ");
    parse_err(text, "line 1, column 5: unterminated double quote in "
                    "\"\\\"012345678901234567890123456789012345678\"...");
    /* 40 characters, not 40 bytes */
    snprintf(text, sizeof text, "'%s", "éééééééééééééééééééééééééééééééééééééééééé");
    parse_err(text, "line 1, column 1: unterminated single quote in "
                    "\"'ééééééééééééééééééééééééééééééééééééééé\"...");
    /* exactly 40: no ellipsis */
    snprintf(text, sizeof text, "'%s", "012345678901234567890123456789012345678");
    parse_err(text, "line 1, column 1: unterminated single quote in "
                    "\"'012345678901234567890123456789012345678\"");
}

Test(shell_parse, error_discards_earlier_commands_and_respects_errcap)
{
    char small[16];
    sh_cmd *cmds = NULL;
    size_t n = 0;
    const char *text = "a; b; c 'x";
    cr_assert_eq(sh_parse(text, strlen(text), 1, &cmds, &n, small, sizeof small), BT_EINVAL);
    cr_assert_null(cmds);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(small, "line 1, column ");
    cr_assert_eq(sh_parse(text, strlen(text), 1, &cmds, &n, NULL, 0), BT_EINVAL);
    cr_assert_neq(strstr(bt_errmsg(), "unterminated single quote"), NULL);
}

/* ---- sh_escape --------------------------------------------------------------- */

Test(shell_parse, escape_examples)
{
    static const struct { const char *in; size_t n; bool qeq; const char *out; } cases[] = {
        { "abc", 3, false, "abc" },
        { "cf:q", 4, false, "cf:q" },
        { "", 0, false, "\"\"" },
        { "a b", 3, false, "\"a b\"" },
        { "a=b", 3, false, "a=b" },
        { "a=b", 3, true, "\"a=b\"" },
        { "a;b", 3, false, "\"a;b\"" },
        { "#a", 2, false, "\"#a\"" },
        { "it's", 4, false, "\"it's\"" },
        { "\0\xff\n\t\r\"\\\x7f\x1b", 9, false, "\"\\x00\\xff\\n\\t\\r\\\"\\\\\\x7f\\x1b\"" },
        { "é表", 5, false, "\"é表\"" },
        { "\xc2\x85", 2, false, "\"\\xc2\\x85\"" },         /* C1 control NEL */
        { "a\xe2\x80\x8b", 4, false, "\"a\\xe2\\x80\\x8b\"" },  /* zero-width space */
        { "\xc0\xaf", 2, false, "\"\\xc0\\xaf\"" },         /* overlong '/' */
        { "\xed\xa0\x80", 3, false, "\"\\xed\\xa0\\x80\"" }, /* surrogate */
        { "\xe9", 1, false, "\"\\xe9\"" },                 /* truncated sequence */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = escape(cases[i].in, cases[i].n, cases[i].qeq);
        cr_assert_str_eq(s, cases[i].out, "case %zu", i);
        free(s);
    }
}

/* Bytes a user is likely to trip over, mixed with random ones. */
static uint8_t random_byte(unsigned *seed)
{
    static const uint8_t tricky[] = { 0, ' ', '\t', '\n', '\r', '"', '\'', '\\', '=', ';', '#',
                                      'x', '0', 'a', 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0xff };
    int r = rand_r(seed);
    if (r % 2) return tricky[(unsigned)(r >> 8) % sizeof tricky];
    return (uint8_t)(r >> 8);
}

static void hex_dump(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
    out[o] = '\0';
}

Test(shell_parse, escape_round_trips_random_bytes)
{
    unsigned seed = 20240611;
    uint8_t x[48];
    for (int iter = 0; iter < 10000; iter++) {
        size_t n = (size_t)rand_r(&seed) % (sizeof x + 1);
        for (size_t i = 0; i < n; i++) x[i] = random_byte(&seed);
        for (int qeq = 0; qeq < 2; qeq++) {
            char hex[2 * sizeof x + 1];
            bt_buf b = {0};
            cr_assert_eq(sh_escape(x, n, qeq, &b), BT_OK);
            sh_cmd *cmds;
            size_t nc;
            int rc = sh_parse((const char *)b.data, b.len, 1, &cmds, &nc, g_err, sizeof g_err);
            hex_dump(x, n, hex, sizeof hex);
            cr_assert_eq(rc, BT_OK, "case %d [%s]: %s", iter, hex, g_err);
            cr_assert_eq(nc, 1, "case %d [%s]: %zu commands", iter, hex, nc);
            cr_assert_eq(cmds[0].n, 1, "case %d [%s]: %zu words", iter, hex, cmds[0].n);
            cr_assert_eq(cmds[0].w[0].n, n, "case %d [%s]", iter, hex);
            cr_assert(memcmp(cmds[0].w[0].s, x, n) == 0, "case %d [%s]", iter, hex);
            if (qeq) cr_assert_eq(cmds[0].w[0].eq, -1, "case %d [%s]", iter, hex);
            sh_cmds_free(cmds, nc);
            bt_buf_free(&b);
        }
    }
}

Test(shell_parse, escaped_words_join_into_one_command)
{
    /* key=value with an escaped key (quote_eq) and value: eq lands on the separator */
    unsigned seed = 7;
    uint8_t k[16], v[16];
    for (int iter = 0; iter < 2000; iter++) {
        size_t kn = (size_t)rand_r(&seed) % sizeof k, vn = (size_t)rand_r(&seed) % sizeof v;
        for (size_t i = 0; i < kn; i++) k[i] = random_byte(&seed);
        for (size_t i = 0; i < vn; i++) v[i] = random_byte(&seed);
        bt_buf b = {0};
        cr_assert_eq(bt_buf_append(&b, "put\t", 4), BT_OK);
        cr_assert_eq(sh_escape(k, kn, true, &b), BT_OK);
        cr_assert_eq(bt_buf_append(&b, "=", 1), BT_OK);
        cr_assert_eq(sh_escape(v, vn, false, &b), BT_OK);
        cr_assert_eq(bt_buf_append(&b, " ;", 2), BT_OK);
        sh_cmd *cmds;
        size_t nc;
        cr_assert_eq(sh_parse((const char *)b.data, b.len, 1, &cmds, &nc, g_err, sizeof g_err), BT_OK,
                     "%s", g_err);
        cr_assert_eq(nc, 1);
        cr_assert_eq(cmds[0].n, 2);
        const char *key, *val;
        size_t kl, vl;
        cr_assert(sh_kv(&cmds[0].w[1], &key, &kl, &val, &vl), "case %d", iter);
        cr_assert(kl == kn && memcmp(key, k, kn) == 0, "case %d", iter);
        cr_assert(vl == vn && memcmp(val, v, vn) == 0, "case %d", iter);
        sh_cmds_free(cmds, nc);
        bt_buf_free(&b);
    }
}

Test(shell_parse, random_input_parses_or_fails_cleanly)
{
    unsigned seed = 99;
    uint8_t text[64];
    for (int iter = 0; iter < 10000; iter++) {
        size_t n = (size_t)rand_r(&seed) % sizeof text;
        for (size_t i = 0; i < n; i++) text[i] = random_byte(&seed);
        sh_cmd *cmds;
        size_t nc;
        int rc = sh_parse((const char *)text, n, 1, &cmds, &nc, g_err, sizeof g_err);
        if (rc == BT_OK) {
            for (size_t c = 0; c < nc; c++) {
                cr_assert_gt(cmds[c].n, 0);
                for (size_t w = 0; w < cmds[c].n; w++) cr_assert_eq(cmds[c].w[w].s[cmds[c].w[w].n], '\0');
            }
            sh_cmds_free(cmds, nc);
        } else {
            cr_assert_eq(rc, BT_EINVAL);
            cr_assert_eq(strncmp(g_err, "line ", 5), 0, "%s", g_err);
            cr_assert_null(cmds);
        }
    }
}

/* ---- durations ------------------------------------------------------------- */

Test(shell_parse, durations)
{
    static const struct { const char *s; int64_t us; } ok[] = {
        { "0", 0 }, { "30", 30000000 }, { "250ms", 250000 }, { "30s", 30000000 },
        { "5m", 300000000 }, { "2h", 7200000000LL }, { "7d", 604800000000LL }, { "0ms", 0 },
        { "9223372036854ms", 9223372036854000LL }, { "106751991d", 106751991LL * 86400000000LL },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t us = -1;
        cr_assert_eq(sh_parse_duration(ok[i].s, &us), BT_OK, "%s", ok[i].s);
        cr_assert_eq(us, ok[i].us, "%s: %lld", ok[i].s, (long long)us);
    }
    static const char *bad[] = {
        "", "5x", "-1s", "+1s", " 5s", "5s ", "5 s", "s", "ms", "1.5s", "5sec", "5S", "5msx",
        "0x10", "106751992d", "9223372036855s", "9223372036854775808", "99999999999999999999ms",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 42;
        cr_assert_eq(sh_parse_duration(bad[i], &us), BT_EINVAL, "[%s] accepted", bad[i]);
        cr_assert_eq(us, 42);
    }
    int64_t us;
    cr_assert_eq(sh_parse_duration(NULL, &us), BT_EINVAL);
}

/* ---- text tables -------------------------------------------------------------- */

/* The table printed into a string (caller frees). */
static char *print_table(const sh_table *t, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    if (json) sh_table_print_json(t, f);
    else sh_table_print(t, f);
    fclose(f);
    return buf;
}

static sh_table *three_cols(void)
{
    static const char *const h[] = { "row", "column", "value" };
    sh_table *t = sh_table_new(3, h);
    cr_assert_not_null(t);
    return t;
}

static void add3(sh_table *t, const char *a, const char *b, const char *c)
{
    const char *cells[] = { a, b, c };
    cr_assert_eq(sh_table_add(t, cells, NULL), BT_OK);
}

Test(shell_format, text_columns_align_on_escaped_width)
{
    sh_table *t = three_cols();
    add3(t, "r1", "cf:a", "hello world");
    add3(t, "row-number-2", "cf:b", "x");
    add3(t, "r3", "cf:long", "a\tb");
    cr_assert_eq(sh_table_rows(t), 3);
    char *s = print_table(t, false);
    cr_assert_str_eq(s,
                     "row           column   value\n"
                     "------------  -------  -------------\n"
                     "r1            cf:a     \"hello world\"\n"
                     "row-number-2  cf:b     x\n"
                     "r3            cf:long  \"a\\tb\"\n");
    free(s);
    sh_table_free(t);
}

Test(shell_format, text_width_counts_terminal_columns)
{
    sh_table *t = three_cols();
    add3(t, "é", "表表", "v");
    add3(t, "ab", "e\xcc\x81", "w"); /* e + combining acute: one column */
    add3(t, "\xff", "x", "y");
    char *s = print_table(t, false);
    cr_assert_str_eq(s,
                     "row     column  value\n"
                     "------  ------  -----\n"
                     "\"é\"     \"表表\"  v\n"
                     "ab      \"e\xcc\x81\"     w\n"
                     "\"\\xff\"  x       y\n");
    free(s);
    sh_table_free(t);
}

Test(shell_format, text_headers_wider_than_cells_and_empty_tables)
{
    sh_table *t = three_cols();
    char *s = print_table(t, false);
    cr_assert_str_eq(s, "row  column  value\n---  ------  -----\n");
    free(s);
    add3(t, "", "c", "");
    s = print_table(t, false);
    cr_assert_str_eq(s, "row  column  value\n---  ------  -----\n\"\"   c       \"\"\n");
    free(s);
    sh_table_free(t);

    sh_table *z = sh_table_new(0, NULL);
    cr_assert_not_null(z);
    cr_assert_eq(sh_table_add(z, NULL, NULL), BT_OK);
    s = print_table(z, false);
    cr_assert_str_eq(s, "");
    free(s);
    sh_table_free(z);
    cr_assert_null(sh_table_new(-1, NULL));
}

Test(shell_format, cells_with_lengths_are_binary_safe_and_pasteable)
{
    static const char *const h[] = { "k", "v" };
    sh_table *t = sh_table_new(2, h);
    const char *cells[] = { "a=b;c", "x\0y" };
    const size_t lens[] = { 5, 3 };
    cr_assert_eq(sh_table_add(t, cells, lens), BT_OK);
    char *s = print_table(t, false);
    cr_assert_str_eq(s, "k        v\n-------  --------\n\"a=b;c\"  \"x\\x00y\"\n");
    free(s);
    sh_table_free(t);
}

Test(shell_format, headers_are_copied)
{
    char h0[] = "name";
    const char *h[] = { h0 };
    sh_table *t = sh_table_new(1, h);
    h0[0] = 'X';
    char cell[] = "v";
    const char *cells[] = { cell };
    sh_table_add(t, cells, NULL);
    cell[0] = 'Z';
    char *s = print_table(t, false);
    cr_assert_str_eq(s, "name\n----\nv\n");
    free(s);
    sh_table_free(t);
}

/* ---- JSON ------------------------------------------------------------------- */

static cJSON *parse_json(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "invalid JSON: %s", s);
    cr_assert(cJSON_IsArray(j));
    return j;
}

static void assert_string(const cJSON *row, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    cr_assert(cJSON_IsString(v), "%s is not a string", key);
    cr_assert_str_eq(v->valuestring, want);
}

static void assert_b64(const cJSON *row, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    cr_assert(cJSON_IsObject(v), "%s is not an object", key);
    cr_assert_eq(cJSON_GetArraySize(v), 1);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "b64");
    cr_assert(cJSON_IsString(b));
    cr_assert_str_eq(b->valuestring, want);
}

Test(shell_format, json_text_and_binary)
{
    static const char *const h[] = { "row", "value" };
    sh_table *t = sh_table_new(2, h);
    static const struct { const char *p; size_t n; } vals[] = {
        { "plain \"quoted\" \\ back", 21 }, { "multi\nline\ttab", 14 }, { "é表", 5 },
        { "\xff", 1 }, { "\xff\xfe", 2 }, { "\xff\xfe\xfd", 3 }, { "\0", 1 },
        { "\0\x01\xff\x80", 4 }, { "\xc3(", 2 }, { "cr\r", 3 }, { "\x7f", 1 }, { "", 0 },
    };
    size_t nv = sizeof vals / sizeof vals[0];
    for (size_t i = 0; i < nv; i++) {
        char row[8];
        snprintf(row, sizeof row, "r%zu", i);
        const char *cells[] = { row, vals[i].p };
        const size_t lens[] = { strlen(row), vals[i].n };
        cr_assert_eq(sh_table_add(t, cells, lens), BT_OK);
    }
    char *s = print_table(t, true);
    /* one object per line, between "[" and "]" lines */
    size_t lines = 0;
    for (const char *p = s; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, nv + 2, "%s", s);
    cr_assert_eq(strncmp(s, "[\n", 2), 0);

    cJSON *j = parse_json(s);
    cr_assert_eq((size_t)cJSON_GetArraySize(j), nv);
    const cJSON *r[16];
    for (size_t i = 0; i < nv; i++) {
        r[i] = cJSON_GetArrayItem(j, (int)i);
        char row[8];
        snprintf(row, sizeof row, "r%zu", i);
        assert_string(r[i], "row", row);
    }
    assert_string(r[0], "value", "plain \"quoted\" \\ back");
    assert_string(r[1], "value", "multi\nline\ttab");
    assert_string(r[2], "value", "é表");
    assert_b64(r[3], "value", "/w==");
    assert_b64(r[4], "value", "//4=");
    assert_b64(r[5], "value", "//79");
    assert_b64(r[6], "value", "AA==");
    assert_b64(r[7], "value", "AAH/gA==");
    assert_b64(r[8], "value", "wyg=");
    assert_b64(r[9], "value", "Y3IN");
    assert_b64(r[10], "value", "fw==");
    assert_string(r[11], "value", "");
    cJSON_Delete(j);
    free(s);
    sh_table_free(t);
}

Test(shell_format, json_exact_layout_and_empty)
{
    static const char *const h[] = { "a", "b" };
    sh_table *t = sh_table_new(2, h);
    char *s = print_table(t, true);
    cr_assert_str_eq(s, "[]\n");
    cJSON_Delete(parse_json(s));
    free(s);
    const char *c1[] = { "1", "x" }, *c2[] = { "2", "y\"" };
    sh_table_add(t, c1, NULL);
    sh_table_add(t, c2, NULL);
    s = print_table(t, true);
    cr_assert_str_eq(s, "[\n  {\"a\":\"1\",\"b\":\"x\"},\n  {\"a\":\"2\",\"b\":\"y\\\"\"}\n]\n");
    cJSON_Delete(parse_json(s));
    free(s);
    sh_table_free(t);
}

Test(shell_format, json_random_cells_always_valid)
{
    static const char *const h[] = { "v" };
    sh_table *t = sh_table_new(1, h);
    unsigned seed = 3;
    uint8_t x[24];
    for (int i = 0; i < 500; i++) {
        size_t n = (size_t)rand_r(&seed) % sizeof x;
        for (size_t k = 0; k < n; k++) x[k] = random_byte(&seed);
        const char *cells[] = { (const char *)x };
        cr_assert_eq(sh_table_add(t, cells, &n), BT_OK);
    }
    char *s = print_table(t, true);
    cJSON *j = parse_json(s);
    cr_assert_eq(cJSON_GetArraySize(j), 500);
    cJSON_Delete(j);
    free(s);
    sh_table_free(t);
}

/* ---- footer ------------------------------------------------------------------ */

static char *footer(size_t rows, int64_t us)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sh_print_footer(f, rows, us);
    fclose(f);
    return buf;
}

Test(shell_format, footer)
{
    static const struct { size_t rows; int64_t us; const char *want; } cases[] = {
        { 3, 1240, "(3 rows, 1.24 ms)\n" }, { 1, 500, "(1 row, 0.50 ms)\n" },
        { 0, 0, "(0 rows, 0.00 ms)\n" }, { 12345, 2500000, "(12345 rows, 2500.00 ms)\n" },
        { 2, 1, "(2 rows, 0.00 ms)\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = footer(cases[i].rows, cases[i].us);
        cr_assert_str_eq(s, cases[i].want);
        free(s);
    }
}
