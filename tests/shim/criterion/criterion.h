/*
 * Minimal Criterion-compatible test harness, used ONLY by the ThreadSanitizer
 * build (make tsan / SAN=thread), where Debian's libcriterion 2.4 cannot start
 * ("Could not initialize inheritable arena" or a crash in libcriterion).
 * The Makefile puts -Itests/shim on the include path for test objects and links
 * build-tsan/obj/tests/shim/shim_main.o instead of -lcriterion.  Every other
 * build uses the real Criterion.
 *
 * Supported subset of the Criterion 2.x (old-style assertion) API:
 *   Test(suite, name, .init, .fini, .signal, .exit_code, .disabled,
 *        .description, .timeout), TestSuite(suite, same options),
 *   cr_assert / cr_expect and their _not, _fail, _eq, _neq, _lt, _leq, _gt,
 *   _geq, _null, _not_null, _float_eq, _float_neq, _str_*, _wcs_*, _arr_eq,
 *   _arr_neq, _arr_eq_cmp, _arr_neq_cmp variants, each taking an optional
 *   trailing string-literal printf format and arguments (as in Criterion);
 *   cr_skip_test, cr_log, cr_log_info/warn/error, cr_fail, cr_fatal,
 *   cr_malloc/cr_calloc/cr_realloc/cr_free.
 * Semantics follow Criterion: every test runs in its own forked process, a
 * failed cr_assert aborts the test (the fixtures' fini still run), a failed
 * cr_expect marks the test failed and continues; suite .init runs before the
 * test's .init, the test's .fini before the suite's .fini.
 */
#ifndef BT_SHIM_CRITERION_CRITERION_H
#define BT_SHIM_CRITERION_CRITERION_H

/* The standard headers the real <criterion/criterion.h> pulls in. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define BT_SHIM_CRITERION 1

struct criterion_test_extra_data {
    int sentinel_;
    void (*init)(void);
    void (*fini)(void);
    int signal;
    int exit_code;
    bool disabled;
    const char *description;
    double timeout;
    void *data;
};

struct bt_shim_test {
    const char *suite;
    const char *name;
    const char *file;
    unsigned line;
    void (*fn)(void);
    const struct criterion_test_extra_data *data;
    struct bt_shim_test *next;
};

struct bt_shim_suite {
    const char *name;
    const struct criterion_test_extra_data *data;
    struct bt_shim_suite *next;
};

void bt_shim_register_test(struct bt_shim_test *t);
void bt_shim_register_suite(struct bt_shim_suite *s);

/* Report a failed assertion.  fmt is "x" followed by the user's optional
 * message format (the "x" keeps an absent message from being an empty format
 * string); deflt is reported when the user gave no message.  The _1 variants
 * (cr_assert*) abort the test and do not return, the _0 variants (cr_expect*)
 * mark it failed and return.  The str variants add actual/expected strings. */
void bt_shim_fail_0(const char *file, int line, const char *deflt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void bt_shim_fail_1(const char *file, int line, const char *deflt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
void bt_shim_str_fail_0(const char *file, int line, const char *deflt, const char *actual,
                        const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void bt_shim_str_fail_1(const char *file, int line, const char *deflt, const char *actual,
                        const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 6, 7), noreturn));
void bt_shim_skip(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define BT_SHIM_CAT_(a, b) a##b
#define BT_SHIM_ID_(Suite, Name, What) BT_SHIM_CAT_(bt_shim_##What##_##Suite##_, Name)

/* ---- registration -------------------------------------------------------- */

#define Test(Suite, Name, ...)                                                              \
    static void BT_SHIM_ID_(Suite, Name, fn)(void);                                         \
    static const struct criterion_test_extra_data BT_SHIM_ID_(Suite, Name, data) = {       \
        .sentinel_ = 0, __VA_ARGS__};                                                       \
    static struct bt_shim_test BT_SHIM_ID_(Suite, Name, test) = {                           \
        #Suite, #Name, __FILE__, __LINE__, BT_SHIM_ID_(Suite, Name, fn),                    \
        &BT_SHIM_ID_(Suite, Name, data), NULL};                                             \
    __attribute__((constructor)) static void BT_SHIM_ID_(Suite, Name, reg)(void)             \
    {                                                                                       \
        bt_shim_register_test(&BT_SHIM_ID_(Suite, Name, test));                            \
    }                                                                                       \
    static void BT_SHIM_ID_(Suite, Name, fn)(void)

#define TestSuite(Name, ...)                                                                \
    static const struct criterion_test_extra_data bt_shim_sdata_##Name = {.sentinel_ = 0,  \
                                                                         __VA_ARGS__};      \
    static struct bt_shim_suite bt_shim_suite_##Name = {#Name, &bt_shim_sdata_##Name, NULL}; \
    __attribute__((constructor)) static void bt_shim_sreg_##Name(void)                      \
    {                                                                                       \
        bt_shim_register_suite(&bt_shim_suite_##Name);                                      \
    }                                                                                       \
    extern int bt_shim_semicolon_

/* ---- generic assertion core ---------------------------------------------- */

#define bt_shim_check_(Abort, Cond, Deflt, ...)                                             \
    do {                                                                                    \
        if (!(Cond))                                                                        \
            bt_shim_fail_##Abort(__FILE__, __LINE__, (Deflt), "x" __VA_ARGS__);            \
    } while (0)

#define bt_shim_op_(Abort, Op, Actual, Expected, ...)                                       \
    bt_shim_check_(Abort, (Actual)Op(Expected),                                             \
                   "The expression (" #Actual ") " #Op " (" #Expected ") is false.",        \
                   __VA_ARGS__)

#define bt_shim_str_op_(Abort, Op, Actual, Expected, ...)                                   \
    do {                                                                                    \
        const char *bt_shim_a_ = (Actual);                                                  \
        const char *bt_shim_e_ = (Expected);                                                \
        if (!(strcmp(bt_shim_a_, bt_shim_e_) Op 0))                                         \
            bt_shim_str_fail_##Abort(__FILE__, __LINE__,                                    \
                               "The expression (as strings) (" #Actual ") " #Op " ("        \
                               #Expected ") is false",                                      \
                               bt_shim_a_, bt_shim_e_, "x" __VA_ARGS__);                    \
    } while (0)

#define bt_shim_wcs_op_(Abort, Op, Actual, Expected, ...)                                   \
    bt_shim_check_(Abort, wcscmp((Actual), (Expected)) Op 0,                                \
                   "The expression (as wide strings) (" #Actual ") " #Op " (" #Expected     \
                   ") is false.",                                                           \
                   __VA_ARGS__)

#define bt_shim_float_eq_(Abort, Actual, Expected, Epsilon, ...)                            \
    bt_shim_check_(Abort,                                                                   \
                   (Expected) - (Actual) <= (Epsilon) && (Actual) - (Expected) <= (Epsilon), \
                   "The expression (" #Actual ") == (" #Expected ") [epsilon " #Epsilon     \
                   "] is false.",                                                           \
                   __VA_ARGS__)

#define bt_shim_float_neq_(Abort, Actual, Expected, Epsilon, ...)                           \
    bt_shim_check_(Abort,                                                                   \
                   (Expected) - (Actual) > (Epsilon) || (Actual) - (Expected) > (Epsilon),  \
                   "The expression (" #Actual ") != (" #Expected ") [epsilon " #Epsilon     \
                   "] is false.",                                                           \
                   __VA_ARGS__)

/* ---- cr_assert_* (abort the test) ------------------------------------------ */

#define cr_assert(Cond, ...) \
    bt_shim_check_(1, Cond, "The expression " #Cond " is false.", __VA_ARGS__)
#define cr_assert_not(Cond, ...) \
    bt_shim_check_(1, !(Cond), "The expression !(" #Cond ") is false.", __VA_ARGS__)
#define cr_assert_fail(...) \
    bt_shim_fail_1(__FILE__, __LINE__, \
                          "The conditions for this assertion were not met.", "x" __VA_ARGS__)
#define cr_assert_eq(Actual, Expected, ...) bt_shim_op_(1, ==, Actual, Expected, __VA_ARGS__)
#define cr_assert_neq(Actual, Expected, ...) bt_shim_op_(1, !=, Actual, Expected, __VA_ARGS__)
#define cr_assert_lt(Actual, Expected, ...) bt_shim_op_(1, <, Actual, Expected, __VA_ARGS__)
#define cr_assert_leq(Actual, Expected, ...) bt_shim_op_(1, <=, Actual, Expected, __VA_ARGS__)
#define cr_assert_gt(Actual, Expected, ...) bt_shim_op_(1, >, Actual, Expected, __VA_ARGS__)
#define cr_assert_geq(Actual, Expected, ...) bt_shim_op_(1, >=, Actual, Expected, __VA_ARGS__)
#define cr_assert_null(Value, ...) \
    bt_shim_check_(1, (Value) == NULL, #Value " is not null.", __VA_ARGS__)
#define cr_assert_not_null(Value, ...) \
    bt_shim_check_(1, (Value) != NULL, #Value " is null.", __VA_ARGS__)
#define cr_assert_float_eq(Actual, Expected, Epsilon, ...) \
    bt_shim_float_eq_(1, Actual, Expected, Epsilon, __VA_ARGS__)
#define cr_assert_float_neq(Actual, Expected, Epsilon, ...) \
    bt_shim_float_neq_(1, Actual, Expected, Epsilon, __VA_ARGS__)
#define cr_assert_str_eq(Actual, Expected, ...) bt_shim_str_op_(1, ==, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_neq(Actual, Expected, ...) bt_shim_str_op_(1, !=, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_lt(Actual, Expected, ...) bt_shim_str_op_(1, <, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_leq(Actual, Expected, ...) bt_shim_str_op_(1, <=, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_gt(Actual, Expected, ...) bt_shim_str_op_(1, >, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_geq(Actual, Expected, ...) bt_shim_str_op_(1, >=, Actual, Expected, __VA_ARGS__)
#define cr_assert_str_empty(Value, ...) \
    bt_shim_check_(1, ((const char *)(Value))[0] == '\0', #Value " is not empty.", __VA_ARGS__)
#define cr_assert_str_not_empty(Value, ...) \
    bt_shim_check_(1, ((const char *)(Value))[0] != '\0', #Value " is empty.", __VA_ARGS__)
#define cr_assert_wcs_eq(Actual, Expected, ...) bt_shim_wcs_op_(1, ==, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_neq(Actual, Expected, ...) bt_shim_wcs_op_(1, !=, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_lt(Actual, Expected, ...) bt_shim_wcs_op_(1, <, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_leq(Actual, Expected, ...) bt_shim_wcs_op_(1, <=, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_gt(Actual, Expected, ...) bt_shim_wcs_op_(1, >, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_geq(Actual, Expected, ...) bt_shim_wcs_op_(1, >=, Actual, Expected, __VA_ARGS__)
#define cr_assert_wcs_empty(Value, ...) \
    bt_shim_check_(1, ((const wchar_t *)(Value))[0] == L'\0', #Value " is not empty.", __VA_ARGS__)
#define cr_assert_wcs_not_empty(Value, ...) \
    bt_shim_check_(1, ((const wchar_t *)(Value))[0] != L'\0', #Value " is empty.", __VA_ARGS__)
#define cr_assert_arr_eq(Actual, Expected, Size, ...)                                        \
    bt_shim_check_(1, memcmp((Actual), (Expected), (Size)) == 0,                            \
                   "The expression (" #Actual ")[0 .. " #Size "] == (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_assert_arr_neq(Actual, Expected, Size, ...)                                       \
    bt_shim_check_(1, memcmp((Actual), (Expected), (Size)) != 0,                            \
                   "The expression (" #Actual ")[0 .. " #Size "] != (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_assert_arr_eq_cmp(Actual, Expected, Size, Cmp, ...)                               \
    bt_shim_check_(1, bt_shim_arr_cmp_((Actual), (Expected), (Size), (Cmp)) == 0,           \
                   "The expression (" #Actual ")[0 .. " #Size "] == (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_assert_arr_neq_cmp(Actual, Expected, Size, Cmp, ...)                              \
    bt_shim_check_(1, bt_shim_arr_cmp_((Actual), (Expected), (Size), (Cmp)) != 0,           \
                   "The expression (" #Actual ")[0 .. " #Size "] != (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)

/* ---- cr_expect_* (mark failed, continue) ---------------------------------- */

#define cr_expect(Cond, ...) \
    bt_shim_check_(0, Cond, "The expression " #Cond " is false.", __VA_ARGS__)
#define cr_expect_not(Cond, ...) \
    bt_shim_check_(0, !(Cond), "The expression !(" #Cond ") is false.", __VA_ARGS__)
#define cr_expect_fail(...) \
    bt_shim_fail_0(__FILE__, __LINE__, \
                          "The conditions for this assertion were not met.", "x" __VA_ARGS__)
#define cr_expect_eq(Actual, Expected, ...) bt_shim_op_(0, ==, Actual, Expected, __VA_ARGS__)
#define cr_expect_neq(Actual, Expected, ...) bt_shim_op_(0, !=, Actual, Expected, __VA_ARGS__)
#define cr_expect_lt(Actual, Expected, ...) bt_shim_op_(0, <, Actual, Expected, __VA_ARGS__)
#define cr_expect_leq(Actual, Expected, ...) bt_shim_op_(0, <=, Actual, Expected, __VA_ARGS__)
#define cr_expect_gt(Actual, Expected, ...) bt_shim_op_(0, >, Actual, Expected, __VA_ARGS__)
#define cr_expect_geq(Actual, Expected, ...) bt_shim_op_(0, >=, Actual, Expected, __VA_ARGS__)
#define cr_expect_null(Value, ...) \
    bt_shim_check_(0, (Value) == NULL, #Value " is not null.", __VA_ARGS__)
#define cr_expect_not_null(Value, ...) \
    bt_shim_check_(0, (Value) != NULL, #Value " is null.", __VA_ARGS__)
#define cr_expect_float_eq(Actual, Expected, Epsilon, ...) \
    bt_shim_float_eq_(0, Actual, Expected, Epsilon, __VA_ARGS__)
#define cr_expect_float_neq(Actual, Expected, Epsilon, ...) \
    bt_shim_float_neq_(0, Actual, Expected, Epsilon, __VA_ARGS__)
#define cr_expect_str_eq(Actual, Expected, ...) bt_shim_str_op_(0, ==, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_neq(Actual, Expected, ...) bt_shim_str_op_(0, !=, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_lt(Actual, Expected, ...) bt_shim_str_op_(0, <, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_leq(Actual, Expected, ...) bt_shim_str_op_(0, <=, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_gt(Actual, Expected, ...) bt_shim_str_op_(0, >, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_geq(Actual, Expected, ...) bt_shim_str_op_(0, >=, Actual, Expected, __VA_ARGS__)
#define cr_expect_str_empty(Value, ...) \
    bt_shim_check_(0, ((const char *)(Value))[0] == '\0', #Value " is not empty.", __VA_ARGS__)
#define cr_expect_str_not_empty(Value, ...) \
    bt_shim_check_(0, ((const char *)(Value))[0] != '\0', #Value " is empty.", __VA_ARGS__)
#define cr_expect_wcs_eq(Actual, Expected, ...) bt_shim_wcs_op_(0, ==, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_neq(Actual, Expected, ...) bt_shim_wcs_op_(0, !=, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_lt(Actual, Expected, ...) bt_shim_wcs_op_(0, <, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_leq(Actual, Expected, ...) bt_shim_wcs_op_(0, <=, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_gt(Actual, Expected, ...) bt_shim_wcs_op_(0, >, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_geq(Actual, Expected, ...) bt_shim_wcs_op_(0, >=, Actual, Expected, __VA_ARGS__)
#define cr_expect_wcs_empty(Value, ...) \
    bt_shim_check_(0, ((const wchar_t *)(Value))[0] == L'\0', #Value " is not empty.", __VA_ARGS__)
#define cr_expect_wcs_not_empty(Value, ...) \
    bt_shim_check_(0, ((const wchar_t *)(Value))[0] != L'\0', #Value " is empty.", __VA_ARGS__)
#define cr_expect_arr_eq(Actual, Expected, Size, ...)                                        \
    bt_shim_check_(0, memcmp((Actual), (Expected), (Size)) == 0,                            \
                   "The expression (" #Actual ")[0 .. " #Size "] == (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_expect_arr_neq(Actual, Expected, Size, ...)                                       \
    bt_shim_check_(0, memcmp((Actual), (Expected), (Size)) != 0,                            \
                   "The expression (" #Actual ")[0 .. " #Size "] != (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_expect_arr_eq_cmp(Actual, Expected, Size, Cmp, ...)                               \
    bt_shim_check_(0, bt_shim_arr_cmp_((Actual), (Expected), (Size), (Cmp)) == 0,           \
                   "The expression (" #Actual ")[0 .. " #Size "] == (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)
#define cr_expect_arr_neq_cmp(Actual, Expected, Size, Cmp, ...)                              \
    bt_shim_check_(0, bt_shim_arr_cmp_((Actual), (Expected), (Size), (Cmp)) != 0,           \
                   "The expression (" #Actual ")[0 .. " #Size "] != (" #Expected            \
                   ")[0 .. " #Size "] is false.", __VA_ARGS__)

/* Element-wise comparison for the *_cmp variants (Cmp takes pointers to two
 * elements, like Criterion's).  Evaluates to the first non-zero Cmp result. */
#define bt_shim_arr_cmp_(Actual, Expected, Size, Cmp)                                        \
    __extension__({                                                                         \
        int bt_shim_r_ = 0;                                                                 \
        for (size_t bt_shim_i_ = 0; bt_shim_r_ == 0 && bt_shim_i_ < (size_t)(Size);          \
             bt_shim_i_++)                                                                  \
            bt_shim_r_ = (Cmp)(&(Actual)[bt_shim_i_], &(Expected)[bt_shim_i_]);             \
        bt_shim_r_;                                                                         \
    })

/* ---- misc ----------------------------------------------------------------- */

#define cr_fail(...) cr_expect_fail(__VA_ARGS__)
#define cr_fatal(...) cr_assert_fail(__VA_ARGS__)
#define cr_skip_test(...) bt_shim_skip(__FILE__, __LINE__, "x" __VA_ARGS__)
#define cr_skip(...) cr_skip_test(__VA_ARGS__)

/* <criterion/logging.h> (included by the real <criterion/criterion.h>) */
enum criterion_severity {
    CR_LOG_INFO,
    CR_LOG_WARNING,
    CR_LOG_ERROR,
};
void cr_log(enum criterion_severity severity, const char *msg, ...)
    __attribute__((format(printf, 2, 3)));
#define cr_log_info(...) cr_log(CR_LOG_INFO, __VA_ARGS__)
#define cr_log_warn(...) cr_log(CR_LOG_WARNING, __VA_ARGS__)
#define cr_log_error(...) cr_log(CR_LOG_ERROR, __VA_ARGS__)

/* <criterion/alloc.h>: tests run in their own process, plain malloc is fine. */
static inline void *cr_malloc(size_t size) { return malloc(size); }
static inline void *cr_calloc(size_t nmemb, size_t size) { return calloc(nmemb, size); }
static inline void *cr_realloc(void *ptr, size_t size) { return realloc(ptr, size); }
static inline void cr_free(void *ptr) { free(ptr); }

#endif /* BT_SHIM_CRITERION_CRITERION_H */
