// NameArena implementation: bump allocation from chunks, per-class free lists.
#include "arena.hpp"

#include <bit>
#include <cstring>

namespace glockd {

std::size_t NameArena::class_of(std::size_t len) {
  if (len <= kMinClassBytes) return 0;
  // bit_width(len - 1) is log2 of the next power of two >= len.
  return static_cast<std::size_t>(std::bit_width(len - 1)) - 4;
}

char* NameArena::carve(std::size_t bytes) {
  if (left_ < bytes) {
    // The tail of the old chunk is abandoned: at most kMaxClassBytes per chunk.
    chunks_.push_back(std::make_unique<char[]>(kChunkBytes));
    reserved_ += kChunkBytes;
    cursor_ = chunks_.back().get();
    left_ = kChunkBytes;
  }
  char* p = cursor_;
  cursor_ += bytes;
  left_ -= bytes;
  return p;
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
}

}  // namespace glockd
