// Registry implementation.
#include "registry.hpp"

namespace glockd {

void Registry::set(ConnId conn, std::string_view name) {
  auto it = by_conn_.find(conn);
  if (it != by_conn_.end()) {
    by_seq_.erase(it->second.seq);
    it->second = Entry{next_seq_, std::string(name)};
  } else {
    by_conn_.emplace(conn, Entry{next_seq_, std::string(name)});
  }
  by_seq_.emplace(next_seq_++, conn);
}

void Registry::drop(ConnId conn) {
  auto it = by_conn_.find(conn);
  if (it == by_conn_.end()) return;
  by_seq_.erase(it->second.seq);
  by_conn_.erase(it);
}

const std::string* Registry::name_of(ConnId conn) const {
  auto it = by_conn_.find(conn);
  return it == by_conn_.end() ? nullptr : &it->second.name;
}

}  // namespace glockd
