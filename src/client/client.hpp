// Client: one blocking connection to glockd, one typed call per request of
// the protocol (docs/PROTOCOL.md, Parts 1 and 2). Every call has a deadline;
// failures are values (Result), never exceptions. After an Io, Closed or
// Timeout error the connection is unusable (an answer may still be on its
// way) and every further call fails at once: connect again. A tls://
// address speaks TLS (client/tls.hpp) with the same calls and deadlines.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/address.hpp"
#include "client/result.hpp"
#include "fd.hpp"

namespace glockd::client {

class TlsContext;  // client/tls.hpp: load_tls()
class TlsSession;
struct TlsSessionDelete {
  void operator()(TlsSession* s) const;
};

struct Options {
  // Connecting, the TLS handshake included.
  std::chrono::milliseconds connect_timeout{5000};
  // How long the daemon has to answer a request (for w/sw: beyond MS).
  std::chrono::milliseconds request_timeout{10000};
  // TCP keepalive idle time in seconds (0: off). The link is declared dead
  // about 3x this after the peer went silent (4 probes at half this
  // interval, and TCP_USER_TIMEOUT for unacknowledged data), well before the
  // daemon's own keepalive would release the lock.
  int keepalive_seconds = 10;
  // For a tls:// address: the certificates (load_tls). None: the server
  // is checked against the system's CAs and no client certificate is sent.
  std::shared_ptr<const TlsContext> tls;
};

struct Holder {        // one line of `d` or `sd`
  std::string lock;    // the lock's name
  std::string holder;  // registered name, or the holder's ADDR
};

struct Registration {  // one line of `who`
  std::string addr;
  std::string name;
};

struct Identity {  // `me`
  std::string addr;
  std::string name;  // the registered name, or addr when none
};

struct Released {  // `ra` and `resume`
  std::uint64_t exclusive = 0;
  std::uint64_t shared = 0;
};

struct Stat {  // one `q` line
  std::string key;
  std::uint64_t value = 0;
};

// The longest wait one `w`/`sw` may ask for.
inline constexpr std::uint32_t kMaxWaitMs = 2147483647;

class Client {
 public:
  static Result<Client> connect(const Address& address, const Options& options = {});

  Client(Client&&) = default;
  Client& operator=(Client&&) = default;  // the connection replaced ends without close_notify
  ~Client();  // over TLS, says close_notify first

  const Address& address() const { return address_; }
  // The socket, for poll(); read it only through check_link() (over TLS
  // the readable bytes may be no answer at all, e.g. a session ticket).
  int fd() const { return fd_.get(); }
  bool usable() const { return static_cast<bool>(fd_); }

  // Exclusive locks. get/wait: true = held now, false = held by another
  // (or refused by a daemon limit, which looks the same on the wire).
  Result<bool> get(std::string_view name);
  Result<bool> release(std::string_view name);   // false: this connection did not hold it
  Result<bool> is_locked(std::string_view name);
  Result<bool> wait(std::uint32_t ms, std::string_view name);

  // Shared locks: the holder count (with this connection), 0 = not taken.
  Result<std::uint64_t> shared_get(std::string_view name);
  Result<bool> shared_release(std::string_view name);
  Result<std::uint64_t> shared_count(std::string_view name);  // si: 0 = free
  // sw: a slot of a semaphore of `limit`; 0 = timed out.
  Result<std::uint64_t> shared_wait(std::uint32_t limit, std::uint32_t ms, std::string_view name);

  // Inspection (Errc::Disabled when the daemon runs with --dump=false).
  Result<std::vector<Holder>> holders(std::optional<std::string_view> name = {});         // d
  Result<std::vector<Holder>> shared_holders(std::optional<std::string_view> name = {});  // sd
  Result<std::string> dump();         // the raw Go map line of `dump`
  Result<std::string> dump_shared();  // `dump shared`

  // Registry.
  Result<Identity> me();
  Result<Done> iam(std::string_view name);  // empty: drop the registration
  Result<std::vector<Registration>> who(std::optional<std::string_view> name = {});

  Result<std::vector<Stat>> stats();  // q

  // Part 2.
  Result<std::uint64_t> token(std::string_view name);  // 0: not held by this connection
  Result<Released> release_all();
  Result<std::uint32_t> grace(std::uint32_t ms);
  Result<std::string> session();
  Result<std::optional<Released>> resume(std::string_view token);  // nullopt: refused

  // Without blocking: an error if the daemon has closed the connection or
  // the link failed (what the socket said), nothing while it is alive.
  std::optional<Error> check_link();

  // Sends one raw request line and reads `lines` answer lines (for tools and
  // tests; requests that answer nothing must not be sent here).
  Result<std::vector<std::string>> raw(std::string_view request, std::size_t lines);

 private:
  Client(UniqueFd fd, Address address, Options options)
      : fd_(std::move(fd)), address_(std::move(address)), options_(std::move(options)) {}

  using Clock = std::chrono::steady_clock;

  Result<Done> start_tls(Clock::time_point deadline);
  Result<Done> check_name(std::string_view name, const char* what) const;
  Result<Done> send_all(std::string_view bytes, Clock::time_point deadline, std::string_view what);
  Result<std::string> read_line(Clock::time_point deadline, std::string_view what);
  Result<std::string> call(std::string request, std::chrono::milliseconds extra = {});
  Result<std::vector<std::string>> call_lines(std::string request);
  Result<std::string> map_line(std::string request);  // dump, dump shared
  Result<std::vector<Holder>> inspect(std::string_view command,  // d or sd
                                      std::optional<std::string_view> name);
  Error broken(Errc code, std::string message);
  Error unexpected(std::string_view request, std::string_view answer) const;
  Error refused(std::string_view request, std::string_view line) const;  // "0 Bad Request: ..."
  Result<std::uint64_t> counted(std::string request, std::string_view ok_text,
                                std::string_view fail_text, std::chrono::milliseconds extra = {});
  Result<bool> yes_no(std::string request, std::string_view yes, std::string_view no,
                      std::chrono::milliseconds extra = {});

  std::unique_ptr<TlsSession, TlsSessionDelete> tls_;  // null: plain
  UniqueFd fd_;
  Address address_;
  Options options_;
  std::string in_;  // bytes received past the last line returned
  bool answered_ = false;  // a line has come
};

}  // namespace glockd::client
