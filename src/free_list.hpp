// FreeList: reuses the freed slots of a std::vector slab, linked through one
// uint32_t member, and gives the slab's free tail back when it empties.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace glockd {

// The list lives in the freed slots themselves: a free slot's `Link` member
// holds the index of the next free slot. Only the head is kept here, with
// the counts that tell when a trim is worth its O(slab) pass.
template <class T, std::uint32_t T::*Link>
class FreeList {
 public:
  // Slabs this small are never trimmed: not worth a pass.
  static constexpr std::size_t kMinTrimSlots = 64;

  // The index of a slot to use: the last one freed, else a new one appended
  // to `slab`. The caller overwrites the slot.
  std::uint32_t take(std::vector<T>& slab) {
    ++live_;
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
    --live_;
    ++freed_;
  }

  // Trims `slab` when under a quarter of it is live and a quarter of it has
  // been freed since the last pass (which pays for the pass: O(1) amortised
  // per free, however grow and shrink alternate), or when nothing is live
  // (the pass empties the slab: paid for by the takes that filled it).
  // Cheap when not due. A few live slots near the top keep the slab until
  // they are freed and a quarter of it has been freed again.
  void maybe_trim(std::vector<T>& slab) {
    const std::size_t n = slab.size();
    if (n > kMinTrimSlots && live_ * 4 < n && (freed_ * 4 >= n || live_ == 0)) [[unlikely]]
      trim(slab);
  }

  std::size_t live() const { return live_; }

 private:
  // Drops the free slots at the top of the slab (live indexes all stay
  // below, so none changes) and relinks the rest lowest first, so new
  // locks fill the bottom and the top drains for the next trim. The memory
  // goes back only when that halves the slab at least.
  void trim(std::vector<T>& slab) {
    freed_ = 0;
    std::vector<bool> is_free(slab.size(), false);
    for (std::uint32_t i = head_; i != kEnd; i = slab[i].*Link) is_free[i] = true;
    std::size_t keep = slab.size();
    while (keep > 0 && is_free[keep - 1]) --keep;
    if (keep <= slab.size() / 2) {
      // A power-of-two capacity, so that growing back doubles to the same
      // sizes as the first time.
      std::vector<T> kept;
      kept.reserve(std::bit_ceil(keep));
      kept.assign(slab.begin(), slab.begin() + static_cast<std::ptrdiff_t>(keep));
      slab.swap(kept);
    }
    head_ = kEnd;  // every free slot still in the slab goes back on the list
    for (std::size_t i = slab.size(); i-- > 0;) {
      if (!is_free[i]) continue;
      slab[i].*Link = head_;
      head_ = static_cast<std::uint32_t>(i);
    }
  }

  static constexpr std::uint32_t kEnd = 0xffffffffu;
  std::uint32_t head_ = kEnd;
  std::size_t live_ = 0;   // slots taken and not given back
  std::size_t freed_ = 0;  // give_back calls since the last trim pass
};

}  // namespace glockd
