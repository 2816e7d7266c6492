// LockTable memory after a flood: the index, the slabs and the name arena
// give their memory back once the locks are released, and the locks that
// remain are intact.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "lock_table.hpp"

using namespace glockd;

namespace {

constexpr int kFlood = 100000;

std::string lock_name(int i) { return std::string("lock-").append(std::to_string(i)); }

// What an empty table may keep after a flood: the arena's current chunk
// and slabs of up to FreeList::kMinTrimSlots slots.
constexpr std::size_t kSlack = NameArena::kChunkBytes + 16 * 1024;

}  // namespace

TEST(LockTableMemory, ReleaseAllAfterAFloodGivesTheMemoryBack) {
  LockTable t;
  const std::size_t empty = t.memory_bytes();
  std::vector<Holdings> h(200);
  for (int i = 0; i < kFlood; ++i) {
    const ConnId c = static_cast<ConnId>(i % 100);
    ASSERT_TRUE(t.acquire(c, h[c], lock_name(i)).ok);
  }
  for (ConnId c = 100; c < 200; ++c)  // a queued waiter on every 1000th lock
    ASSERT_EQ(t.wait(c, h[c], lock_name((c - 100) * 1000), 0, true).status,
              LockTable::WaitStatus::Queued);
  const std::size_t peak = t.memory_bytes();
  EXPECT_GT(peak, 50 * empty);
  for (ConnId c = 0; c < 200; ++c) t.release_all(h[c], [](LockKind, std::string_view) {});
  t.grants().clear();
  EXPECT_EQ(t.exclusive_locks(), 0u);
  EXPECT_EQ(t.waiters(), 0u);
  EXPECT_LE(t.memory_bytes(), empty + kSlack);
  // And the table still works.
  Holdings a;
  EXPECT_TRUE(t.acquire(1, a, "again").ok);
  EXPECT_EQ(t.holder("again"), 1u);
}

TEST(LockTableMemory, ReleasesInRandomOrderGiveTheMemoryBack) {
  LockTable t;
  const std::size_t empty = t.memory_bytes();
  Holdings h;
  std::vector<int> order(kFlood);
  for (int i = 0; i < kFlood; ++i) {
    order[i] = i;
    ASSERT_TRUE(t.acquire_shared(1, h, lock_name(i)).ok);
  }
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (int i : order) ASSERT_TRUE(t.release_shared(1, h, lock_name(i)));
  EXPECT_EQ(t.shared_locks(), 0u);
  EXPECT_LE(t.memory_bytes(), empty + kSlack);
}

// Survivors at the lowest and highest slots: the index and the arena shrink
// at once; the slabs once the high ones are gone and a quarter of them has
// been freed again. Names, holders, tokens, shared holders and a queued
// waiter of the survivors all stay as they were.
TEST(LockTableMemory, SurvivorsStayIntactWhileTheRestShrinks) {
  LockTable t;
  const std::size_t empty = t.memory_bytes();
  Holdings keep, rest, sharer, waiter;
  std::vector<int> low, high;
  t.acquire_shared(1, keep, "shared");  // low slots
  t.acquire_shared(3, sharer, "shared");
  for (int i = 0; i < kFlood; ++i) {
    const bool survives = i < 5 || i >= kFlood - 5;
    ASSERT_TRUE(t.acquire(survives ? 1 : 2, survives ? keep : rest, lock_name(i)).ok);
    if (survives) (i < 5 ? low : high).push_back(i);
  }
  std::vector<std::uint64_t> tokens;
  for (int i : low) tokens.push_back(t.token(1, lock_name(i)));
  ASSERT_EQ(t.wait(4, waiter, lock_name(0), 0, true).status, LockTable::WaitStatus::Queued);
  const std::size_t peak = t.memory_bytes();

  t.release_all(rest, [](LockKind, std::string_view) {});
  const std::size_t after_flood = t.memory_bytes();
  // The index (2 MiB) and the arena (1.6 MiB) shrink; the slabs wait for the high slots.
  EXPECT_LT(after_flood + 3'000'000, peak);
  for (std::size_t k = 0; k < low.size(); ++k) {
    EXPECT_EQ(t.holder(lock_name(low[k])), 1u);
    EXPECT_EQ(t.token(1, lock_name(low[k])), tokens[k]);
  }
  for (int i : high) EXPECT_EQ(t.holder(lock_name(i)), 1u);
  EXPECT_EQ(t.holder(lock_name(50)), kNil);
  EXPECT_EQ(t.shared_holders("shared"), 2u);

  for (int i : high) ASSERT_TRUE(t.release(1, keep, lock_name(i)));
  Holdings churn;  // ordinary traffic after the attack
  for (int i = 0; i < kFlood / 2; ++i) {
    ASSERT_TRUE(t.acquire(5, churn, std::string("c").append(std::to_string(i))).ok);
    ASSERT_TRUE(t.release(5, churn, std::string("c").append(std::to_string(i))));
  }
  EXPECT_LE(t.memory_bytes(), empty + 2 * kSlack);

  for (std::size_t k = 0; k < low.size(); ++k)
    EXPECT_EQ(t.token(1, lock_name(low[k])), tokens[k]);
  EXPECT_TRUE(t.release_shared(3, sharer, "shared"));
  EXPECT_EQ(t.shared_holders("shared"), 1u);
  ASSERT_TRUE(t.release(1, keep, lock_name(0)));  // the waiter gets it
  ASSERT_EQ(t.grants().size(), 1u);
  EXPECT_EQ(t.grants()[0].conn, 4u);
  EXPECT_EQ(t.grants()[0].name, lock_name(0));
  t.grants().clear();
  EXPECT_GT(t.token(4, lock_name(0)), tokens.back());
  t.release_all(keep, [](LockKind, std::string_view) {});
  t.release_all(waiter, [](LockKind, std::string_view) {});
  EXPECT_EQ(t.exclusive_locks() + t.shared_locks(), 0u);
  EXPECT_LE(t.memory_bytes(), empty + 2 * kSlack);
}

// Flood, release, flood again: the memory comes back each time, and stays
// at what one flood needs.
TEST(LockTableMemory, RepeatedFloodsDoNotAccumulate) {
  LockTable t;
  const std::size_t empty = t.memory_bytes();
  std::size_t first_peak = 0;
  for (int round = 0; round < 3; ++round) {
    Holdings h;
    for (int i = 0; i < kFlood / 4; ++i) ASSERT_TRUE(t.acquire(1, h, lock_name(i)).ok);
    if (round == 0) first_peak = t.memory_bytes();
    EXPECT_LE(t.memory_bytes(), first_peak + kSlack);
    t.release_all(h, [](LockKind, std::string_view) {});
    EXPECT_LE(t.memory_bytes(), empty + kSlack);
  }
}
