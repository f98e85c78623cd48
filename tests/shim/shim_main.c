/*
 * Runner of the minimal Criterion-compatible harness (see
 * tests/shim/criterion/criterion.h).  Linked into the test binaries of the
 * ThreadSanitizer build only, in place of -lcriterion.
 *
 * The runner itself stays single-threaded: it forks one child per test (so a
 * crash, an .exit_code/.signal expectation, a failed assertion or a
 * ThreadSanitizer report with halt_on_error=1 is contained), enforces each
 * test's .timeout by SIGKILL, prints one "[FAIL] suite::name: ..." line per
 * failing test and ends with the Criterion synthesis line
 *   [====] Synthesis: Tested: N | Passing: P | Failing: F | Crashing: C
 * (Failing includes Crashing, as in Criterion; skipped and disabled tests are
 * not counted).  Exit status is 1 if any test failed, 0 otherwise.
 *
 * Options: --jobs N / -j N / --jobs=N (tests run in parallel, default 1),
 * --filter GLOB / --filter=GLOB (fnmatch on "suite/name"), --timeout SECS
 * (default for tests without .timeout), --verbose[=N], --list / -l,
 * --fail-fast, --always-succeed; any other Criterion option is accepted and
 * ignored.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- registry -------------------------------------------------------------- */

static struct bt_shim_test *g_tests;
static struct bt_shim_suite *g_suites;

void bt_shim_register_test(struct bt_shim_test *t)
{
    t->next = g_tests;
    g_tests = t;
}

void bt_shim_register_suite(struct bt_shim_suite *s)
{
    s->next = g_suites;
    g_suites = s;
}

static const struct criterion_test_extra_data *suite_data(const char *name)
{
    for (struct bt_shim_suite *s = g_suites; s; s = s->next)
        if (strcmp(s->name, name) == 0) return s->data;
    return NULL;
}

/* ---- state shared between the runner and one test child -------------------- */

struct shared {
    int failed;          /* an assertion/expectation failed */
    int skipped;         /* cr_skip_test was called */
    char skip_msg[512];
};

static struct shared *g_sh;   /* in the child: its own shared slot */
static pthread_t g_main_thread;
static jmp_buf g_jmp;
static int g_verbose;

static void sh_set(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int sh_get(const int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

/* Writes a message block with one write(2) so parallel children do not
 * interleave inside a block. */
static void emit(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Prints a failed assertion the way Criterion does, "[----]   " before
 * every line of msg. */
static void emit_failure(const char *file, int line, const char *msg)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f) return;
    fprintf(f, "[----] %s:%d: Assertion Failed\n[----]   \n", file, line);
    const char *p = msg;
    for (;;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(f, "[----]   %.*s\n", n, p);
        if (!nl) break;
        p = nl + 1;
    }
    fprintf(f, "[----]   \n");
    fclose(f);
    emit(out, outlen);
    free(out);
}

/* Leaves the test after a failed cr_assert or a cr_skip_test.  From the
 * test's main thread, jumps back to the runner in the child (fixtures' fini
 * still run after a failure); from any other thread the process ends at once,
 * the outcome being already recorded in shared memory. */
static void leave_test(void) __attribute__((noreturn));
static void leave_test(void)
{
    if (g_sh && pthread_equal(pthread_self(), g_main_thread)) longjmp(g_jmp, 1);
    fflush(NULL);
    _exit(0);
}

/* fmt is "x" + the user's message format; without a user message the
 * default message deflt (followed by extra, if any) is reported. */
static void vfailed(int abort_test, const char *file, int line, const char *deflt,
                    const char *extra, const char *fmt, va_list ap)
{
    char *user = NULL, *def = NULL;
    if (vasprintf(&user, fmt, ap) < 0) user = NULL;
    const char *msg;
    if (user && user[1]) {
        msg = user + 1;
    } else if (extra && asprintf(&def, "%s%s", deflt, extra) >= 0) {
        msg = def;
    } else {
        def = NULL;
        msg = deflt;
    }
    emit_failure(file, line, msg);
    free(user);
    free(def);
    if (!g_sh) _exit(1); /* assertion outside any test (e.g. a constructor) */
    sh_set(&g_sh->failed, 1);
    if (abort_test) leave_test();
}

void bt_shim_fail_0(const char *file, int line, const char *deflt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfailed(0, file, line, deflt, NULL, fmt, ap);
    va_end(ap);
}

void bt_shim_fail_1(const char *file, int line, const char *deflt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfailed(1, file, line, deflt, NULL, fmt, ap);
    va_end(ap);
    leave_test(); /* not reached */
}

static void str_failed(int abort_test, const char *file, int line, const char *deflt,
                       const char *actual, const char *expected, const char *fmt, va_list ap)
{
    char *extra = NULL;
    if (asprintf(&extra, ": actual=`%s` expected=`%s`.", actual, expected) < 0) extra = NULL;
    if (abort_test && extra) {
        /* vfailed does not return: keep the message on the stack. */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", extra);
        free(extra);
        vfailed(1, file, line, deflt, buf, fmt, ap);
    }
    vfailed(abort_test, file, line, deflt, extra, fmt, ap);
    free(extra);
}

void bt_shim_str_fail_0(const char *file, int line, const char *deflt, const char *actual,
                        const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    str_failed(0, file, line, deflt, actual, expected, fmt, ap);
    va_end(ap);
}

void bt_shim_str_fail_1(const char *file, int line, const char *deflt, const char *actual,
                        const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    str_failed(1, file, line, deflt, actual, expected, fmt, ap);
    va_end(ap);
    leave_test(); /* not reached */
}

void bt_shim_skip(const char *file, int line, const char *fmt, ...)
{
    (void)file;
    (void)line;
    va_list ap;
    va_start(ap, fmt);
    char *user = NULL;
    if (vasprintf(&user, fmt, ap) < 0) user = NULL;
    va_end(ap);
    if (g_sh) {
        snprintf(g_sh->skip_msg, sizeof g_sh->skip_msg, "%s",
                 (user && user[1]) ? user + 1 : "Test was skipped");
        sh_set(&g_sh->skipped, 1);
    }
    free(user);
    leave_test();
}

void cr_log(enum criterion_severity severity, const char *msg, ...)
{
    static const char *const prefix[] = {"[----] ", "[WARN] ", "[ERR ] "};
    if (severity == CR_LOG_INFO && !g_verbose) return;
    int idx = severity >= CR_LOG_INFO && severity <= CR_LOG_ERROR ? (int)severity : 0;
    char *body = NULL, *line = NULL;
    va_list ap;
    va_start(ap, msg);
    if (vasprintf(&body, msg, ap) < 0) body = NULL;
    va_end(ap);
    if (body && asprintf(&line, "%s%s\n", prefix[idx], body) >= 0) {
        emit(line, strlen(line));
        free(line);
    }
    free(body);
}

/* ---- the child --------------------------------------------------------------- */

static void run_protected(void (*fn)(void))
{
    if (!fn) return;
    if (setjmp(g_jmp) == 0) fn();
}

static void child_main(const struct bt_shim_test *t, const struct criterion_test_extra_data *sd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    g_main_thread = pthread_self();

    if (sd && sd->init) run_protected(sd->init);
    if (!sh_get(&g_sh->failed) && !sh_get(&g_sh->skipped) && t->data->init)
        run_protected(t->data->init);
    if (!sh_get(&g_sh->failed) && !sh_get(&g_sh->skipped)) run_protected(t->fn);
    if (!sh_get(&g_sh->skipped)) {
        run_protected(t->data->fini);
        if (sd) run_protected(sd->fini);
    }
    fflush(NULL);
    exit(0); /* exit, not _exit: ThreadSanitizer's exit-time check runs */
}

/* ---- the runner -------------------------------------------------------------- */

struct run {
    const struct bt_shim_test *t;
    const struct criterion_test_extra_data *sd;
    struct shared *sh;
    pid_t pid;
    double start, deadline; /* deadline 0: none */
    int timed_out;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_tests(const void *a, const void *b)
{
    const struct bt_shim_test *x = *(const struct bt_shim_test *const *)a;
    const struct bt_shim_test *y = *(const struct bt_shim_test *const *)b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

static int st_tested, st_passed, st_failed, st_crashed;

static void report(const struct run *r, int status)
{
    const struct bt_shim_test *t = r->t;
    const struct criterion_test_extra_data *d = t->data, *sd = r->sd;
    int want_signal = d->signal ? d->signal : (sd ? sd->signal : 0);
    int want_exit = d->exit_code ? d->exit_code : (sd ? sd->exit_code : 0);
    double el = now() - r->start;
    int failed = sh_get(&r->sh->failed);

    if (!r->timed_out && !failed && WIFEXITED(status) && sh_get(&r->sh->skipped)) {
        if (g_verbose)
            fprintf(stderr, "[SKIP] %s::%s: %s\n", t->suite, t->name, r->sh->skip_msg);
        return;
    }
    st_tested++;
    if (r->timed_out) {
        fprintf(stderr, "[FAIL] %s::%s: Timed out. (%.2fs)\n", t->suite, t->name, el);
        st_failed++;
        return;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (!failed && sig == want_signal) goto pass;
        if (failed) {
            fprintf(stderr, "[FAIL] %s::%s: (%.2fs) (then killed by signal %d, %s)\n", t->suite,
                    t->name, el, sig, strsignal(sig));
            st_failed++;
            return;
        }
        fprintf(stderr, "[----] %s:%u: Unexpected signal caught below this line!\n", t->file,
                t->line);
        fprintf(stderr, "[FAIL] %s::%s: CRASH! (signal %d, %s)\n", t->suite, t->name, sig,
                strsignal(sig));
        st_failed++;
        st_crashed++;
        return;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (failed) {
        fprintf(stderr, "[FAIL] %s::%s: (%.2fs)\n", t->suite, t->name, el);
        st_failed++;
        return;
    }
    if (want_signal) {
        fprintf(stderr, "[FAIL] %s::%s: expected signal %d (%s), exited with status %d (%.2fs)\n",
                t->suite, t->name, want_signal, strsignal(want_signal), code, el);
        st_failed++;
        return;
    }
    if (code != want_exit) {
        fprintf(stderr, "[FAIL] %s::%s: exited with status %d%s, expected %d (%.2fs)\n", t->suite,
                t->name, code,
                code == 66 ? " (a ThreadSanitizer report: data race or deadly signal, see above)" : "", want_exit, el);
        st_failed++;
        return;
    }
pass:
    st_passed++;
    if (g_verbose) fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", t->suite, t->name, el);
}

static int start(struct run *r)
{
    r->sh = mmap(NULL, sizeof *r->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r->sh == MAP_FAILED) {
        perror("shim: mmap");
        return -1;
    }
    memset(r->sh, 0, sizeof *r->sh);
    if (g_verbose) fprintf(stderr, "[RUN ] %s::%s\n", r->t->suite, r->t->name);
    fflush(NULL);
    r->start = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("shim: fork");
        munmap(r->sh, sizeof *r->sh);
        return -1;
    }
    if (pid == 0) {
        g_sh = r->sh;
        child_main(r->t, r->sd);
    }
    r->pid = pid;
    r->timed_out = 0;
    return 0;
}

static int is_opt(const char *a, const char *name) { return strcmp(a, name) == 0; }

static const char *opt_value(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && a[n] == '=' ? a + n + 1 : NULL;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    int jobs = 1, list = 0, fail_fast = 0, always_succeed = 0;
    double default_timeout = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if ((is_opt(a, "--jobs") || is_opt(a, "-j")) && next) {
            jobs = atoi(next);
            i++;
        } else if ((v = opt_value(a, "--jobs"))) {
            jobs = atoi(v);
        } else if (strncmp(a, "-j", 2) == 0 && a[2]) {
            jobs = atoi(a + 2);
        } else if (is_opt(a, "--filter") && next) {
            filter = next;
            i++;
        } else if ((v = opt_value(a, "--filter"))) {
            filter = v;
        } else if (is_opt(a, "--timeout") && next) {
            default_timeout = atof(next);
            i++;
        } else if ((v = opt_value(a, "--timeout"))) {
            default_timeout = atof(v);
        } else if (is_opt(a, "--verbose") || opt_value(a, "--verbose")) {
            g_verbose = 1;
        } else if (is_opt(a, "--list") || is_opt(a, "-l")) {
            list = 1;
        } else if (is_opt(a, "--fail-fast")) {
            fail_fast = 1;
        } else if (is_opt(a, "--always-succeed")) {
            always_succeed = 1;
        } else if ((is_opt(a, "-O") || is_opt(a, "--output") || is_opt(a, "--pattern")) && next) {
            i++; /* options with a separate value we do not implement */
        }
        /* everything else (--ascii, --short-filename, --tap, ...) is ignored */
    }
    if (jobs < 1) jobs = 1;

    size_t n = 0;
    for (struct bt_shim_test *t = g_tests; t; t = t->next) n++;
    const struct bt_shim_test **all = calloc(n ? n : 1, sizeof *all);
    n = 0;
    for (struct bt_shim_test *t = g_tests; t; t = t->next) all[n++] = t;
    qsort(all, n, sizeof *all, cmp_tests);

    /* Select the tests to run. */
    const struct bt_shim_test **queue = calloc(n ? n : 1, sizeof *queue);
    size_t nqueued = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bt_shim_test *t = all[i];
        const struct criterion_test_extra_data *sd = suite_data(t->suite);
        char full[512];
        snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
        if (filter && fnmatch(filter, full, 0) != 0) continue;
        if (list) {
            printf("%s/%s%s\n", t->suite, t->name,
                   (t->data->disabled || (sd && sd->disabled)) ? " (skipped)" : "");
            continue;
        }
        if (t->data->disabled || (sd && sd->disabled)) {
            if (g_verbose) fprintf(stderr, "[SKIP] %s::%s: Test is disabled\n", t->suite, t->name);
            continue;
        }
        queue[nqueued++] = t;
    }
    if (list) return 0;

    struct run *slots = calloc((size_t)jobs, sizeof *slots);
    size_t next_test = 0;
    int running = 0;
    long nap_us = 100;
    int stop = 0;

    while ((next_test < nqueued && !stop) || running > 0) {
        /* Fill the free slots. */
        for (int s = 0; s < jobs && next_test < nqueued && !stop; s++) {
            if (slots[s].t) continue;
            struct run *r = &slots[s];
            r->t = queue[next_test++];
            r->sd = suite_data(r->t->suite);
            double to = r->t->data->timeout > 0 ? r->t->data->timeout
                        : (r->sd && r->sd->timeout > 0) ? r->sd->timeout
                                                        : default_timeout;
            if (start(r) != 0) {
                fprintf(stderr, "[FAIL] %s::%s: could not start the test\n", r->t->suite,
                        r->t->name);
                st_tested++;
                st_failed++;
                r->t = NULL;
                continue;
            }
            r->deadline = to > 0 ? r->start + to : 0;
            running++;
        }

        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (int s = 0; s < jobs; s++) {
                struct run *r = &slots[s];
                if (!r->t || r->pid != pid) continue;
                int before = st_failed;
                report(r, status);
                if (fail_fast && st_failed > before) stop = 1;
                munmap(r->sh, sizeof *r->sh);
                r->t = NULL;
                running--;
                break;
            }
            nap_us = 100;
            continue;
        }
        if (pid < 0 && errno != EINTR && errno != ECHILD) {
            perror("shim: waitpid");
            break;
        }

        double t_now = now();
        for (int s = 0; s < jobs; s++) {
            struct run *r = &slots[s];
            if (r->t && !r->timed_out && r->deadline > 0 && t_now >= r->deadline) {
                r->timed_out = 1;
                kill(r->pid, SIGKILL);
            }
        }
        struct timespec ts = {0, nap_us * 1000};
        nanosleep(&ts, NULL);
        if (nap_us < 10000) nap_us *= 2;
    }

    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
            st_tested, st_passed, st_failed, st_crashed);
    free(slots);
    free(queue);
    free(all);
    if (always_succeed) return 0;
    return st_failed ? 1 : 0;
}
