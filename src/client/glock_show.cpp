// glock inspect, locks, who and stats: what the daemon holds, as a table
// for people or JSON for scripts (what every subcommand shares is in
// glock_connect.cpp).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "client/glock.hpp"

namespace glockd::glock {

using client::Client;
using client::Errc;

namespace {

// The length of the valid UTF-8 sequence at s[i] (shortest form, no
// surrogates, at most U+10FFFF) and its code point; 0 when s[i] starts none.
std::size_t utf8_at(std::string_view s, std::size_t i, char32_t& cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  const std::size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                          : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  cp = c & (0x7f >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b >> 6) != 2) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool is_control(char32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp < 0xa0); }

// JSON strings: valid UTF-8 passes, any other byte (names are opaque
// bytes) is written as \u00XX, i.e. read as Latin-1.
std::string json(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const std::size_t len = utf8_at(s, i, cp);
    if (len == 1 && (cp == '"' || cp == '\\')) {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (len == 1 && cp >= 0x20 && cp != 0x7f) {
      out += static_cast<char>(cp);
    } else if (len > 1) {
      out.append(s.substr(i, len));
    } else {  // a control character, or a byte of no valid sequence
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", len == 1 ? static_cast<unsigned>(cp)
                                                          : static_cast<unsigned char>(s[i]));
      out += buf;
      i += 1;
      continue;
    }
    i += len;
  }
  return out + "\"";
}

// For a terminal: control characters (C0, DEL, C1 such as the 8-bit CSI)
// and bytes that are not valid UTF-8 shown as \xNN, so a name cannot move
// the cursor or reach a terminal that reads 8-bit controls.
std::string shown(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    std::size_t len = utf8_at(s, i, cp);
    if (len > 0 && !is_control(cp)) {
      out.append(s.substr(i, len));
    } else {
      len = std::max<std::size_t>(len, 1);
      for (std::size_t k = 0; k < len; ++k) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i + k]));
        out += buf;
      }
    }
    i += len;
  }
  return out;
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], shown(r[i]).size());
  }
  auto line = [&](const std::vector<std::string>& cells, bool escape) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::string cell = escape ? shown(cells[i]) : cells[i];
      out += cell;
      if (i + 1 < cells.size()) out += std::string(width[i] - cell.size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(header, false);
  for (const auto& r : rows) line(r, true);
}

int failed(const client::Error& e) {
  complain(e.message);
  return exit_code_for(e);
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + json(items[i]);
  return out + "]";
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// Who is behind each `d`/`sd` holder: the registry's names with their
// addresses, and a holder line re-split when it ends in a registered name
// that itself contains ": " (the library splits at the last one).
struct Names {
  bool known = false;  // the registry answered
  std::map<std::string, std::vector<std::string>> addrs;  // name -> ADDRs
  std::vector<std::string> longest_first;

  void fix(client::Holder& h) const {
    const std::string line = h.lock + ": " + h.holder;
    for (const auto& n : longest_first) {
      if (n.find(": ") == std::string::npos) break;  // only these can be misread
      if (line.size() > n.size() + 2 && line.compare(line.size() - n.size() - 2, std::string::npos, ": " + n) == 0) {
        h.lock = line.substr(0, line.size() - n.size() - 2);
        h.holder = n;
        return;
      }
    }
  }
  std::vector<std::string> addresses(const std::string& holder) const {
    if (auto it = addrs.find(holder); it != addrs.end()) return it->second;
    return {holder};  // not a registered name: the holder's ADDR itself
  }
  bool registered(const std::string& holder) const { return addrs.count(holder) > 0; }
};

Names load_names(Client& c, std::optional<client::Error>& error) {
  Names names;
  auto who = c.who();
  if (!who) {
    if (who.error().code != Errc::Disabled) error = who.error();
    return names;
  }
  names.known = true;
  for (auto& r : *who) names.addrs[r.name].push_back(r.addr);
  for (auto& [n, a] : names.addrs) names.longest_first.push_back(n);
  // Names containing ": " first, longest first (see fix()).
  std::sort(names.longest_first.begin(), names.longest_first.end(),
            [](const std::string& a, const std::string& b) {
              const bool ca = a.find(": ") != std::string::npos;
              const bool cb = b.find(": ") != std::string::npos;
              if (ca != cb) return ca;
              return a.size() > b.size();
            });
  return names;
}

}  // namespace

int run_inspect(const Common& common, const std::string& lock) {
  int code = 0;
  auto conn = connect(common, code);
  if (!conn) return code;
  Client& c = *conn;
  auto held = c.is_locked(lock);
  if (!held) return failed(held.error());
  auto count = c.shared_count(lock);
  if (!count) return failed(count.error());
  std::optional<client::Error> err;
  Names names = load_names(c, err);
  if (err) return failed(*err);
  // `d NAME` and `sd NAME` answer only lines "NAME: HOLDER": the holder is
  // what follows the name we asked for. (Splitting at a ": " instead, as
  // `locks` must, can cut a lock name with ": " in the wrong place.)
  const std::string prefix = lock + ": ";
  auto holder_in = [&](const client::Holder& x) -> std::optional<std::string> {
    const std::string line = x.lock + ": " + x.holder;
    if (line.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    return line.substr(prefix.size());
  };
  bool locked = *held;
  std::uint64_t shared_count = *count;
  std::optional<std::string> holder;
  std::vector<std::string> shared;
  bool dump = true;
  if (locked) {
    auto h = c.holders(lock);
    if (!h && h.error().code != Errc::Disabled) return failed(h.error());
    dump = h.ok();
    if (h) {
      for (auto& x : *h) {
        if (auto name = holder_in(x)) holder = std::move(*name);
      }
      locked = holder.has_value();  // else released since the `i`
    }
  }
  if (shared_count > 0) {
    auto h = c.shared_holders(lock);
    if (!h && h.error().code != Errc::Disabled) return failed(h.error());
    dump = dump && h.ok();
    if (h) {
      for (auto& x : *h) {
        if (auto name = holder_in(x)) shared.push_back(std::move(*name));
      }
      shared_count = shared.size();  // the later answer
    }
  }
  if (common.json) {
    std::printf("{\"name\":%s,\"exclusive\":{\"locked\":%s,\"holder\":%s,\"addresses\":%s},"
                "\"shared\":{\"holders\":%llu,\"names\":%s}}\n",
                json(lock).c_str(), locked ? "true" : "false",
                holder ? json(*holder).c_str() : "null",
                holder ? json_list(names.addresses(*holder)).c_str() : "[]",
                static_cast<unsigned long long>(shared_count),
                dump ? json_list(shared).c_str() : "null");
    return 0;
  }
  std::printf("exclusive lock %s: %s\n", shown(lock).c_str(),
              !locked ? "free"
              : holder ? ("held by " + shown(*holder) +
                          (names.registered(*holder)
                               ? " (" + join(names.addresses(*holder), ", ") + ")"
                               : std::string()))
                             .c_str()
                       : "held (holders not shown: the daemon runs with --dump=false)");
  if (shared_count == 0) {
    std::printf("shared lock %s: free\n", shown(lock).c_str());
  } else {
    std::vector<std::string> s;
    for (auto& h : shared) s.push_back(shown(h));
    std::printf("shared lock %s: %llu holder%s%s%s\n", shown(lock).c_str(),
                static_cast<unsigned long long>(shared_count), shared_count == 1 ? "" : "s",
                dump ? ": " : "", dump ? join(s, ", ").c_str() : "");
  }
  return 0;
}

int run_locks(const Common& common) {
  int code = 0;
  auto conn = connect(common, code);
  if (!conn) return code;
  Client& c = *conn;
  std::optional<client::Error> err;
  Names names = load_names(c, err);
  if (err) return failed(*err);
  auto ex = c.holders();
  if (!ex) return failed(ex.error());
  auto sh = c.shared_holders();
  if (!sh) return failed(sh.error());
  struct Row {
    std::string lock, kind, holder;
    std::vector<std::string> addrs;
  };
  std::vector<Row> rows;
  for (auto* list : {&*ex, &*sh}) {
    for (auto& h : *list) {
      names.fix(h);
      rows.push_back(Row{h.lock, list == &*ex ? "exclusive" : "shared", h.holder,
                         names.addresses(h.holder)});
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.lock != b.lock ? a.lock < b.lock : a.kind < b.kind;
  });
  if (common.json) {
    std::string out = "{\"server\":" + json(c.address().text()) + ",\"registry\":" +
                      (names.known ? "true" : "false") + ",\"locks\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      out += std::string(i ? "," : "") + "{\"lock\":" + json(r.lock) + ",\"type\":" +
             json(r.kind) + ",\"holder\":" + json(r.holder) + ",\"addresses\":" +
             json_list(r.addrs) + "}";
    }
    std::printf("%s]}\n", out.c_str());
    return 0;
  }
  if (rows.empty()) {
    std::printf("no locks are held (glockd at %s)\n", c.address().text().c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (auto& r : rows) {
    const bool named = names.registered(r.holder);
    table.push_back({r.lock, r.kind, named ? r.holder : "-", join(r.addrs, ", ")});
  }
  print_table({"LOCK", "TYPE", "HOLDER", "ADDRESS"}, table);
  return 0;
}

int run_who(const Common& common, const std::optional<std::string>& name) {
  int code = 0;
  auto conn = connect(common, code);
  if (!conn) return code;
  auto who = name ? conn->who(*name) : conn->who();
  if (!who) return failed(who.error());
  if (common.json) {
    std::string out = "[";
    for (std::size_t i = 0; i < who->size(); ++i) {
      out += std::string(i ? "," : "") + "{\"address\":" + json((*who)[i].addr) +
             ",\"name\":" + json((*who)[i].name) + "}";
    }
    std::printf("%s]\n", out.c_str());
    return 0;
  }
  if (who->empty()) {
    std::printf("no clients are registered%s\n", name ? (" as " + shown(*name)).c_str() : "");
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (auto& r : *who) table.push_back({r.addr, r.name});
  print_table({"ADDRESS", "NAME"}, table);
  return 0;
}

int run_stats(const Common& common) {
  int code = 0;
  auto conn = connect(common, code);
  if (!conn) return code;
  auto stats = conn->stats();
  if (!stats) return failed(stats.error());
  if (common.json) {
    std::string out = "{";
    for (std::size_t i = 0; i < stats->size(); ++i) {
      out += std::string(i ? "," : "") + json((*stats)[i].key) + ":" +
             std::to_string((*stats)[i].value);
    }
    std::printf("%s}\n", out.c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (auto& s : *stats) table.push_back({s.key, std::to_string(s.value)});
  print_table({"COUNTER", "VALUE"}, table);
  return 0;
}

}  // namespace glockd::glock
