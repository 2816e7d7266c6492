// Registry: the names connections give themselves with `iam`, kept in the
// order they registered so `who` lists the most recent registrant last.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lock_table.hpp"

namespace glockd {

class Registry {
 public:
  // Registers (or re-registers, moving to the end) conn as `name`.
  void set(ConnId conn, std::string_view name);
  void drop(ConnId conn);
  // The registered name, or an empty optional-like nullptr when none.
  const std::string* name_of(ConnId conn) const;

  // Visits (conn, name) in registration order.
  template <class F>
  void for_each(F&& visit) const {
    for (const auto& [seq, conn] : by_seq_) visit(conn, by_conn_.at(conn).name);
  }

 private:
  struct Entry {
    std::uint64_t seq;
    std::string name;
  };
  std::unordered_map<ConnId, Entry> by_conn_;
  std::map<std::uint64_t, ConnId> by_seq_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace glockd
