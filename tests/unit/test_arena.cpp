// NameArena: storage, reuse by size class, accounting.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arena.hpp"

using glockd::NameArena;

TEST(Arena, StoresCopiesThatOutliveTheSource) {
  NameArena arena;
  std::string src = "hello world";
  const std::string_view stored = arena.store(src);
  src.assign("xxxxxxxxxxx");
  EXPECT_EQ(stored, "hello world");
  EXPECT_NE(stored.data(), src.data());
}

TEST(Arena, EmptyNameNeedsNoStorage) {
  NameArena arena;
  EXPECT_TRUE(arena.store("").empty());
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  arena.release(std::string_view{});
}

TEST(Arena, ReleasedSlotIsReusedBySameClass) {
  NameArena arena;
  const std::string_view a = arena.store("abcdefghijklmnopq");  // 17 bytes: 32-byte class
  const char* where = a.data();
  arena.release(a);
  const std::string_view b = arena.store("0123456789abcdefghijklmnopqrst");  // 30: same class
  EXPECT_EQ(b.data(), where);
  EXPECT_EQ(b, "0123456789abcdefghijklmnopqrst");
}

TEST(Arena, AccountsBytesInUse) {
  NameArena arena;
  auto a = arena.store("x");                    // 16
  auto b = arena.store(std::string(100, 'y'));  // 128
  EXPECT_EQ(arena.bytes_in_use(), 16u + 128u);
  arena.release(a);
  arena.release(b);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  EXPECT_EQ(arena.bytes_reserved(), NameArena::kChunkBytes);
}

TEST(Arena, LargeNamesGetTheirOwnAllocation) {
  NameArena arena;
  const std::string big(NameArena::kMaxClassBytes + 1, 'z');
  auto v = arena.store(big);
  EXPECT_EQ(v, big);
  EXPECT_EQ(arena.bytes_in_use(), big.size());
  arena.release(v);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
}

TEST(Arena, ManyNamesSpanChunksAndStayIntact) {
  NameArena arena;
  std::vector<std::string_view> views;
  for (int i = 0; i < 20000; ++i) views.push_back(arena.store("name-" + std::to_string(i)));
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(views[i], "name-" + std::to_string(i));
  EXPECT_GT(arena.bytes_reserved(), NameArena::kChunkBytes);
  for (auto v : views) arena.release(v);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
}

TEST(Arena, EmptyChunksGoBack) {
  NameArena arena;
  std::vector<std::string_view> views;
  for (int i = 0; i < 40000; ++i) views.push_back(arena.store("name-" + std::to_string(i)));
  const std::size_t peak = arena.chunks();
  EXPECT_GT(peak, 5u);
  for (auto v : views) arena.release(v);
  EXPECT_EQ(arena.chunks(), 1u);  // the one being carved stays
  EXPECT_EQ(arena.bytes_reserved(), NameArena::kChunkBytes);
}

TEST(Arena, SurvivorsKeepTheirChunksAndBytes) {
  NameArena arena;
  std::vector<std::string_view> views;
  for (int i = 0; i < 40000; ++i) views.push_back(arena.store("name-" + std::to_string(i)));
  for (int i = 1; i < 39999; ++i) arena.release(views[i]);
  EXPECT_LE(arena.chunks(), 2u);  // the first name's and the current one
  EXPECT_EQ(views[0], "name-0");
  EXPECT_EQ(views[39999], "name-39999");
  // The freed slots of the chunks kept are reused, none of a freed chunk's.
  std::vector<std::string_view> again;
  for (int i = 0; i < 40000; ++i) again.push_back(arena.store("again-" + std::to_string(i)));
  for (int i = 0; i < 40000; ++i) ASSERT_EQ(again[i], "again-" + std::to_string(i));
  EXPECT_EQ(views[0], "name-0");
  EXPECT_EQ(views[39999], "name-39999");
}
