// FreeList: reuses the freed slots of a std::vector slab, linked through one uint32_t member.
#pragma once

#include <cstdint>
#include <vector>

namespace glockd {

// The list lives in the freed slots themselves: a free slot's `Link` member
// holds the index of the next free slot. Only the head is kept here.
template <class T, std::uint32_t T::*Link>
class FreeList {
 public:
  // The index of a slot to use: the last one freed, else a new one appended
  // to `slab`. The caller overwrites the slot.
  std::uint32_t take(std::vector<T>& slab) {
    if (head_ != kEnd) {
      const std::uint32_t i = head_;
      head_ = slab[i].*Link;
      return i;
    }
    const auto i = static_cast<std::uint32_t>(slab.size());
    slab.emplace_back();
    return i;
  }

  // Frees slot `i`, whose storage is `slot` (slab[i]); its `Link` member
  // is overwritten. Taking the slot, not the slab, lets a caller that has
  // just written the slot skip reloading the slab's data pointer.
  void give_back(T& slot, std::uint32_t i) {
    slot.*Link = head_;
    head_ = i;
  }

 private:
  static constexpr std::uint32_t kEnd = 0xffffffffu;
  std::uint32_t head_ = kEnd;
};

}  // namespace glockd
