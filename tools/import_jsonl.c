/* tools/import_jsonl.c: JSON Lines records of bt-import (import_jsonl.h).
 *
 * cJSON validates the line (syntax, escapes, surrogate pairs) and says
 * whether it is an object; the values themselves are then taken by a small
 * scanner over the validated text, because cJSON keeps strings as C strings
 * and would cut a value at a "\u0000" escape. */
#include "tools/import_jsonl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void skip_ws(const uint8_t *p, size_t n, size_t *i)
{
    while (*i < n && (p[*i] == ' ' || p[*i] == '\t' || p[*i] == '\r' || p[*i] == '\n')) (*i)++;
}

static unsigned hex4(const uint8_t *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else v |= (unsigned)(c - 'A' + 10);
    }
    return v;
}

static size_t put_utf8(uint8_t *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the (validated) string at p[*i] == '"' into out (room for the
 * encoded length); *i moves past the closing quote.  Returns the length. */
static size_t decode_string(const uint8_t *p, size_t n, size_t *i, uint8_t *out)
{
    size_t o = 0, k = *i + 1;
    while (k < n && p[k] != '"') {
        if (p[k] != '\\') {
            out[o++] = p[k++];
            continue;
        }
        uint8_t e = k + 1 < n ? p[k + 1] : 0;
        k += 2;
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            if (k + 4 > n) break;
            unsigned cp = hex4(p + k);
            k += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 <= n && p[k] == '\\' && p[k + 1] == 'u') {
                unsigned lo = hex4(p + k + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    k += 6;
                }
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default: out[o++] = e; break; /* \" \\ \/ */
        }
    }
    *i = k + 1;
    return o;
}

/* Skips the (validated) value at p[*i]. */
static void skip_value(const uint8_t *p, size_t n, size_t *i)
{
    size_t k = *i;
    if (p[k] == '"') {
        for (k++; k < n && p[k] != '"'; k++)
            if (p[k] == '\\') k++;
        *i = k + 1;
        return;
    }
    if (p[k] == '{' || p[k] == '[') {
        int depth = 0;
        for (; k < n; k++) {
            uint8_t c = p[k];
            if (c == '"') {
                for (k++; k < n && p[k] != '"'; k++)
                    if (p[k] == '\\') k++;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                k++;
                break;
            }
        }
        *i = k;
        return;
    }
    while (k < n && p[k] != ',' && p[k] != '}' && p[k] != ']' && p[k] != ' ' && p[k] != '\t' && p[k] != '\r' &&
           p[k] != '\n')
        k++;
    *i = k;
}

int imp_jsonl_extract(const uint8_t *line, size_t len, char *const *names, size_t n, imp_value *vals,
                      imp_buf *scratch, char *why, size_t whycap)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts((const char *)line, len, &end, 0);
    if (!doc) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= (const char *)line && at <= (const char *)line + len ? (size_t)(at - (const char *)line) : 0;
        snprintf(why, whycap, "invalid JSON near byte %zu", off + 1);
        return -1;
    }
    bool object = cJSON_IsObject(doc);
    cJSON_Delete(doc);
    size_t i = end ? (size_t)(end - (const char *)line) : len;
    skip_ws(line, len, &i);
    if (i < len) {
        snprintf(why, whycap, "invalid JSON: text after the value at byte %zu", i + 1);
        return -1;
    }
    if (!object) {
        snprintf(why, whycap, "not a JSON object");
        return -1;
    }
    for (size_t f = 0; f < n; f++) vals[f] = (imp_value){0};
    scratch->len = 0;
    if (imp_buf_reserve(scratch, len + 1)) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    i = 0;
    skip_ws(line, len, &i);
    i++; /* '{' */
    uint8_t key[256];
    for (;;) {
        skip_ws(line, len, &i);
        if (i >= len || line[i] == '}') break;
        if (line[i] == ',') {
            i++;
            continue;
        }
        /* member name: decoded into scratch temporarily if short enough to matter */
        size_t ks = i;
        skip_value(line, len, &i);
        size_t klen_raw = i - ks;
        size_t kl = 0;
        bool key_ok = klen_raw <= sizeof key;
        if (key_ok) {
            size_t kk = ks;
            kl = decode_string(line, len, &kk, key);
        }
        skip_ws(line, len, &i);
        i++; /* ':' */
        skip_ws(line, len, &i);
        long f = -1;
        if (key_ok)
            for (size_t x = 0; x < n && f < 0; x++)
                if (strlen(names[x]) == kl && !memcmp(names[x], key, kl)) f = (long)x;
        size_t vs = i;
        if (f >= 0 && !vals[f].present) {
            imp_value *v = &vals[f];
            uint8_t c = line[i];
            if (c == '"') {
                uint8_t *o = scratch->p + scratch->len;
                size_t dl = decode_string(line, len, &i, o);
                *v = (imp_value){o, dl, true, false};
                scratch->len += dl;
                continue;
            }
            skip_value(line, len, &i);
            if (c == '{' || c == '[') *v = (imp_value){line + vs, i - vs, true, true};
            else if (c == 'n') *v = (imp_value){0}; /* null: absent */
            else *v = (imp_value){line + vs, i - vs, true, false};
            continue;
        }
        skip_value(line, len, &i);
    }
    return 0;
}
