// LineReader: turns a byte stream into '\n'-terminated request lines,
// keeping an incomplete line between reads and discarding lines longer
// than the limit (docs/PROTOCOL.md section 0). Complete lines inside one read
// are handed out in place, without a copy.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace glockd {

class LineReader {
 public:
  explicit LineReader(std::size_t max_line) : max_line_(max_line) {}

  // Hands each complete line (without '\n') to on_line, which returns false
  // to stop early (the caller keeps the rest). on_overlong() is called once
  // per discarded line. Returns the number of bytes of `data` consumed.
  template <class OnLine, class OnOverlong>
  std::size_t feed(std::string_view data, OnLine&& on_line, OnOverlong&& on_overlong) {
    std::size_t pos = 0;
    while (pos < data.size()) {
      const std::size_t nl = data.find('\n', pos);
      if (discarding_) {
        if (nl == std::string_view::npos) return data.size();
        discarding_ = false;
        pos = nl + 1;
        continue;
      }
      if (nl == std::string_view::npos) {
        keep_partial(data.substr(pos), on_overlong);
        return data.size();
      }
      std::string_view piece = data.substr(pos, nl - pos);
      pos = nl + 1;
      if (!partial_.empty()) {
        if (partial_.size() + piece.size() > max_line_) {
          drop_partial();
          on_overlong();
          continue;
        }
        partial_.append(piece);
        const bool go_on = on_line(std::string_view(partial_));
        drop_partial();
        if (!go_on) return pos;
        continue;
      }
      if (piece.size() > max_line_) {
        on_overlong();
        continue;
      }
      if (!on_line(piece)) return pos;
    }
    return pos;
  }

  // Bytes held for an incomplete line.
  std::size_t buffered() const { return partial_.size(); }

 private:
  template <class OnOverlong>
  void keep_partial(std::string_view tail, OnOverlong&& on_overlong) {
    if (partial_.size() + tail.size() > max_line_) {
      drop_partial();
      discarding_ = true;
      on_overlong();
      return;
    }
    partial_.append(tail);
  }
  void drop_partial();

  std::string partial_;
  std::size_t max_line_;
  bool discarding_ = false;
};

}  // namespace glockd
