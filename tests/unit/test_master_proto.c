/* tests/unit/test_master_proto.c: the master's status message
 * (master/master_proto.h): a round trip with events and compaction queues,
 * an older master's status without the appended sections, and bad counts. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_codec.h"
#include "common/status.h"
#include "master/master_proto.h"

static mp_server servers[2] = {
    {.id = "ts0", .id_len = 3, .address = "127.0.0.1:7100", .address_len = 14, .tablets = 3, .memtable_bytes = 10,
     .sstable_bytes = 20, .reads = 30, .writes = 40, .compaction_queue = 2},
    {.id = "ts1", .id_len = 3, .address = "127.0.0.1:7101", .address_len = 14, .tablets = 4, .memtable_bytes = 11,
     .sstable_bytes = 21, .reads = 31, .writes = 41, .compaction_queue = 0},
};
static mp_event events[2] = {
    {.time_us = 1000, .text = "tablet server ts0 registered at 127.0.0.1:7100", .text_len = 46},
    {.time_us = 2000, .text = "created table t with 2 tablets", .text_len = 30},
};

static bt_buf encode(size_t n_events)
{
    mp_status st = {.address = "127.0.0.1:7001", .address_len = 14, .active_since_us = 99, .tables = 1,
                    .tablets = 7, .n_servers = 2, .servers = servers, .n_events = n_events, .events = events};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    mp_put_status(&w, &st);
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
    return b;
}

Test(master_proto, status_round_trip)
{
    bt_buf b = encode(2);
    bt_msg_reader r;
    bt_msg_reader_init(&r, b.data, b.len);
    mp_status s;
    cr_assert_eq(mp_get_status(&r, &s), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_remaining(&r), 0);
    cr_assert_eq(s.n_servers, 2);
    cr_assert_eq(s.servers[0].compaction_queue, 2);
    cr_assert_eq(s.servers[1].writes, 41);
    cr_assert_eq(s.n_events, 2);
    cr_assert_eq(s.events[1].time_us, 2000);
    cr_assert(s.events[0].text_len == 46 && !memcmp(s.events[0].text, events[0].text, 46));
    free(s.servers);
    free(s.events);
    bt_buf_free(&b);
}

/* An older master's answer ends after the servers: no events, queues 0. */
Test(master_proto, status_without_appended_sections)
{
    bt_buf full = encode(0);
    /* the appended sections of encode(0): varint 0 (events), varint 2, 2 x varint */
    size_t old_len = full.len - 1 - 1 - 2;
    bt_msg_reader r;
    bt_msg_reader_init(&r, full.data, old_len);
    mp_status s;
    cr_assert_eq(mp_get_status(&r, &s), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(s.n_servers, 2);
    cr_assert_eq(s.n_events, 0);
    cr_assert_eq(s.servers[0].compaction_queue, 0);
    free(s.servers);
    free(s.events);
    bt_buf_free(&full);
}

/* Counts that do not fit the input, and a queue count that does not match
 * the servers, are corrupt; every strict prefix inside a section fails. */
Test(master_proto, bad_counts_and_truncations)
{
    bt_buf b = encode(2);
    /* the queue section's count is the byte before the two queue varints */
    b.data[b.len - 3] = 5;
    bt_msg_reader r;
    bt_msg_reader_init(&r, b.data, b.len);
    mp_status s;
    cr_assert_eq(mp_get_status(&r, &s), BT_ECORRUPT);
    cr_assert_null(s.servers);
    b.data[b.len - 3] = 2;
    bt_buf e0 = encode(0);
    size_t servers_end = e0.len - 4;
    bt_buf_free(&e0);
    for (size_t cut = 1; cut < b.len; cut++) {
        bt_msg_reader_init(&r, b.data, cut);
        int rc = mp_get_status(&r, &s);
        if (rc == BT_OK) {
            free(s.servers);
            free(s.events);
        }
        /* only the ends of whole sections may decode */
        bool boundary = cut == servers_end || cut == b.len - 3;
        if (!boundary) cr_assert_eq(rc, BT_ECORRUPT, "cut at %zu of %zu decoded", cut, b.len);
    }
    bt_buf_free(&b);
}
