// LineReader: the out-of-line part.
#include "line_reader.hpp"

namespace glockd {

void LineReader::drop_partial() {
  partial_.clear();
  // Idle connections should cost little: give back a large line's buffer.
  if (partial_.capacity() > 256) partial_.shrink_to_fit();
}

}  // namespace glockd
