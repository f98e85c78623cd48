/* tools/import_jsonl.h: one JSON Lines record of bt-import to field values
 * (docs/import.md, "Formats").
 *
 * A record must be one JSON object (validated with cJSON).  The top-level
 * members named by the mapping become values: a string as its UTF-8 bytes
 * with escapes decoded (so "\u0000" is a zero byte and binary-looking values
 * round-trip), a number or true/false as its JSON text exactly as written,
 * null or a missing member as absent; an object or array is marked nested
 * (the mapping rejects it).  When a member appears twice the first counts.
 * Not thread-safe per scratch buffer. */
#ifndef BT_TOOLS_IMPORT_JSONL_H
#define BT_TOOLS_IMPORT_JSONL_H

#include "tools/import_map.h"

/* Extracts the members names[0..n) of the object in line[0..len) into vals
 * (pointers into line or into scratch, which is reset first).  0, or -1 with
 * the reason in why. */
int imp_jsonl_extract(const uint8_t *line, size_t len, char *const *names, size_t n, imp_value *vals,
                      imp_buf *scratch, char *why, size_t whycap);

#endif
