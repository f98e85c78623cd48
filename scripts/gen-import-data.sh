#!/bin/sh
# scripts/gen-import-data.sh: test data for bt-import benchmarks
# (docs/import.md, "Benchmark").
#
#   scripts/gen-import-data.sh ROWS [csv|tsv|jsonl] > FILE
#
# Writes a header (csv, tsv) and ROWS rows "id,a,b,c": id is "u" plus a
# 10-digit number in an interleaved order (interleaved, so rows do not arrive sorted), a, b and c are
# 100-byte values.  Deterministic: the same ROWS give the same bytes.
set -eu
rows=${1:?usage: gen-import-data.sh ROWS [csv|tsv|jsonl]}
fmt=${2:-csv}
case $fmt in csv|tsv|jsonl) ;; *) echo "gen-import-data.sh: format csv, tsv or jsonl" >&2; exit 2;; esac
exec awk -v rows="$rows" -v fmt="$fmt" 'BEGIN {
    alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pad = alpha alpha alpha alpha
    sep = fmt == "tsv" ? "\t" : ","
    if (fmt != "jsonl") print "id" sep "a" sep "b" sep "c"
    for (i = 0; i < rows; i++) {
        id = sprintf("u%010d", ((i + 1) * 48271) % 2147483647)
        for (c = 0; c < 3; c++) v[c] = substr(pad, 1 + (i + c * 17) % 62, 100)
        if (fmt == "jsonl")
            printf "{\"id\":\"%s\",\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\"}\n", id, v[0], v[1], v[2]
        else
            print id sep v[0] sep v[1] sep v[2]
    }
}'
