// NameArena implementation: bump allocation from aligned chunks, per-class
// free lists, per-chunk live counts.
#include "arena.hpp"

#include <bit>
#include <cstring>
#include <new>

namespace glockd {

namespace {
constexpr std::align_val_t kChunkAlign{NameArena::kChunkBytes};
}  // namespace

void NameArena::ChunkFree::operator()(char* chunk) const {
  ::operator delete(chunk, kChunkAlign);
}

std::size_t NameArena::class_of(std::size_t len) {
  if (len <= kMinClassBytes) return 0;
  // bit_width(len - 1) is log2 of the next power of two >= len.
  return static_cast<std::size_t>(std::bit_width(len - 1)) - 4;
}

char* NameArena::carve(std::size_t bytes) {
  if (left_ < bytes) {
    // The tail of the old chunk is abandoned: at most kMaxClassBytes per chunk.
    chunks_.emplace_back(static_cast<char*>(::operator new(kChunkBytes, kChunkAlign)));
    current_ = chunks_.back().get();
    new (current_) ChunkHeader{};
    ++empty_chunks_;
    reserved_ += kChunkBytes;
    cursor_ = current_ + sizeof(ChunkHeader);
    left_ = kChunkBytes - sizeof(ChunkHeader);
  }
  char* p = cursor_;
  cursor_ += bytes;
  left_ -= bytes;
  return p;
}

void NameArena::count_in(char* p) {
  if (header_of(p).live++ == 0) --empty_chunks_;
}

void NameArena::count_out(char* p) {
  if (--header_of(p).live == 0) ++empty_chunks_;
}

std::string_view NameArena::store(std::string_view name) {
  if (name.empty()) return std::string_view{};
  char* p;
  if (name.size() > kMaxClassBytes) {
    p = new char[name.size()];
    reserved_ += name.size();
    in_use_ += name.size();
  } else {
    const std::size_t cls = class_of(name.size());
    const std::size_t bytes = kMinClassBytes << cls;
    if (free_[cls] != nullptr) {
      FreeSlot* slot = free_[cls];
      free_[cls] = slot->next;
      p = reinterpret_cast<char*>(slot);
    } else {
      p = carve(bytes);
    }
    count_in(p);
    in_use_ += bytes;
  }
  std::memcpy(p, name.data(), name.size());
  return std::string_view{p, name.size()};
}

void NameArena::release(std::string_view stored) {
  if (stored.empty()) return;
  char* p = const_cast<char*>(stored.data());
  if (stored.size() > kMaxClassBytes) {
    delete[] p;
    reserved_ -= stored.size();
    in_use_ -= stored.size();
    return;
  }
  const std::size_t cls = class_of(stored.size());
  auto* slot = reinterpret_cast<FreeSlot*>(p);
  slot->next = free_[cls];
  free_[cls] = slot;
  in_use_ -= kMinClassBytes << cls;
  count_out(p);
  // Empty chunks other than the current one, once they are a quarter of
  // all: the pass costs O(free slots), at most 4096 per chunk, and frees a
  // quarter of the chunks, so it is paid for by the memory it returns.
  const std::size_t releasable =
      empty_chunks_ - (current_ != nullptr && header_of(current_).live == 0 ? 1 : 0);
  if (releasable > 0 && releasable * 4 >= chunks_.size()) [[unlikely]]
    release_empty_chunks();
}

// Unlinks the free slots of every empty chunk but the current one from the
// free lists, then frees those chunks.
void NameArena::release_empty_chunks() {
  const auto doomed = [this](const void* p) {
    return header_of(p).live == 0 && &header_of(p) != &header_of(current_);
  };
  for (FreeSlot*& head : free_) {
    FreeSlot** link = &head;
    while (*link != nullptr) {
      if (doomed(*link)) *link = (*link)->next;
      else link = &(*link)->next;
    }
  }
  std::size_t kept = 0;
  for (Chunk& chunk : chunks_) {
    if (doomed(chunk.get())) {
      chunk.reset();
      reserved_ -= kChunkBytes;
      --empty_chunks_;
    } else {
      chunks_[kept++] = std::move(chunk);
    }
  }
  chunks_.resize(kept);
}

}  // namespace glockd
