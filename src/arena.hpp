// NameArena: owns the bytes of every lock name. Names live in large chunks
// carved into power-of-two size classes, so a busy table does not fragment
// the heap and a freed name's slot is reused by the next name of its class.
// Each chunk counts its live names, and chunks left empty (after a flood of
// locks is released) go back to the heap.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace glockd {

class NameArena {
 public:
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  static constexpr std::size_t kMinClassBytes = 16;
  // Names larger than the biggest class get their own allocation.
  static constexpr std::size_t kMaxClassBytes = 4096;

  NameArena() = default;
  NameArena(const NameArena&) = delete;
  NameArena& operator=(const NameArena&) = delete;

  // Copies `name` into the arena; the view stays valid until release().
  std::string_view store(std::string_view name);
  // Returns the storage of a view obtained from store().
  void release(std::string_view stored);

  std::size_t bytes_in_use() const { return in_use_; }
  std::size_t bytes_reserved() const { return reserved_; }
  std::size_t chunks() const { return chunks_.size(); }

 private:
  static constexpr std::size_t kClasses = 9;  // 16 .. 4096
  static std::size_t class_of(std::size_t len);

  struct FreeSlot { FreeSlot* next; };
  // At the start of every chunk; chunks are aligned to kChunkBytes, so a
  // name's chunk is its address rounded down.
  struct alignas(16) ChunkHeader { std::size_t live = 0; };
  struct ChunkFree {
    void operator()(char* chunk) const;
  };
  using Chunk = std::unique_ptr<char, ChunkFree>;

  static ChunkHeader& header_of(const void* p) {
    const auto base = reinterpret_cast<std::uintptr_t>(p) & ~(kChunkBytes - 1);
    return *reinterpret_cast<ChunkHeader*>(base);
  }
  char* carve(std::size_t bytes);
  void count_in(char* p);
  void count_out(char* p);
  void release_empty_chunks();

  std::array<FreeSlot*, kClasses> free_{};
  std::vector<Chunk> chunks_;
  char* current_ = nullptr;     // the chunk carve() cuts from; never released
  std::size_t empty_chunks_ = 0;  // chunks with no live name, current_ included
  char* cursor_ = nullptr;
  std::size_t left_ = 0;
  std::size_t in_use_ = 0;
  std::size_t reserved_ = 0;
};

}  // namespace glockd
