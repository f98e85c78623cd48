/* sstable/format.h: the constants of the SSTable file format, version 1.
 *
 * docs/formats.md ("## SSTable") documents every byte; this header only names
 * the numbers so the builder, the reader and the tests agree on them.
 *
 * File layout, in order:
 *   data blocks | filter block (optional) | properties block | index block | footer
 * Each block is followed by a SST_BLOCK_TRAILER-byte trailer:
 *   1 byte compression type | fixed64 XXH3_64bits(block bytes || type byte)
 * The footer is SST_FOOTER_SIZE bytes and ends with SST_MAGIC.
 */
#ifndef BT_SSTABLE_FORMAT_H
#define BT_SSTABLE_FORMAT_H

#include <stdint.h>

/* Last 8 bytes of every SSTable (fixed64, little-endian). */
#define SST_MAGIC UINT64_C(0xb1a7ab1e55ab1e01)
#define SST_FORMAT_VERSION 1u

/* Compression type byte in each block trailer. */
#define SST_COMPRESS_NONE   0x00
#define SST_COMPRESS_SNAPPY 0x01

/* Block trailer: type byte + full 64-bit XXH3 checksum. */
#define SST_BLOCK_TRAILER 9

/* Footer field offsets (all fixed-width little-endian). */
#define SST_FOOTER_SIZE       64
#define SST_FOOTER_INDEX      0   /* fixed64 offset, fixed64 size */
#define SST_FOOTER_FILTER     16  /* fixed64 offset, fixed64 size; 0,0 = none */
#define SST_FOOTER_PROPS      32  /* fixed64 offset, fixed64 size */
#define SST_FOOTER_VERSION    48  /* fixed32 */
#define SST_FOOTER_CHECKSUM   52  /* fixed32: low 32 bits of XXH3_64bits(bytes 0..51) */
#define SST_FOOTER_MAGIC      56  /* fixed64 SST_MAGIC */

/* Property keys in the properties block.  Builder-maintained numbers and the
 * key range use the "sst." prefix; named properties from
 * sst_builder_set_prop() are stored as SST_PROP_USER_PREFIX + name. */
#define SST_PROP_DATA_BYTES      "sst.data_bytes"
#define SST_PROP_LARGEST         "sst.largest"
#define SST_PROP_NUM_DATA_BLOCKS "sst.num_data_blocks"
#define SST_PROP_NUM_ENTRIES     "sst.num_entries"
#define SST_PROP_RAW_KEY_BYTES   "sst.raw_key_bytes"
#define SST_PROP_RAW_VALUE_BYTES "sst.raw_value_bytes"
#define SST_PROP_SMALLEST        "sst.smallest"
#define SST_PROP_USER_PREFIX     "u."
#define SST_PROP_NAME_MAX        63

/* Per-entry size limits: keep every block below 4 GiB so the fixed32 restart
 * offsets can address it. */
#define SST_MAX_KEY   (UINT32_C(1) << 30)
#define SST_MAX_VALUE (UINT32_C(1) << 30)
#define SST_MAX_BLOCK_SIZE (UINT32_C(1) << 30)

#endif
