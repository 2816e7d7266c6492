// glock: the command line (CLI11) and the dispatch to its subcommands.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include "client/glock.hpp"

namespace {

using namespace glockd::glock;

constexpr const char* kExitCodes =
    "Exit codes: 0 success (exec: CMD's own status; 128+N when CMD died of signal N); "
    "75 the lock is held by another client or the wait timed out (see --conflict-exit-code); "
    "74 the connection to the daemon was lost while CMD ran (the lock was gone); "
    "69 the daemon cannot be reached (TLS: the handshake failed) or has the feature disabled; "
    "76 the daemon gave an answer glock does not understand, or none in time; "
    "64 usage error, or a --cert/--key/--ca file that cannot be used; 126 CMD cannot be run; 127 CMD not found.\n"
    "The global options may come before or after the subcommand. "
    "Server: --server, else $GLOCKD_SERVER, else /run/glockd/socket when it exists, "
    "else 127.0.0.1:9999. TLS: --server tls://host:port with --cert/--key/--ca "
    "(or $GLOCK_CERT, $GLOCK_KEY, $GLOCK_CA). See glock(1); the protocol: /usr/share/doc/glockd/PROTOCOL.md (docs/PROTOCOL.md in the source).";

bool parse_wait(const std::string& text, std::optional<std::uint64_t>& out) {
  if (text == "forever") {
    out.reset();
    return true;
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return false;
  out = v;
  return true;
}

bool valid_env_name(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_';
    if (!ok) return false;
  }
  return true;
}

// The daemon trims a name's ends and turns each run of whitespace into one
// space (docs/PROTOCOL.md section 0), so " x" would silently be the lock
// "x": such a name is refused with the name the daemon would use.
std::string normalised(const std::string& name) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  std::string out;
  bool gap = false;
  for (char c : name) {
    if (space(c)) {
      gap = !out.empty();
    } else {
      if (gap) out += ' ';
      gap = false;
      out += c;
    }
  }
  return out;
}

std::optional<std::string> name_problem(const char* what, const std::string& name) {
  if (name.find('\n') != std::string::npos) return std::string(what) + " must not contain a newline";
  const std::string n = normalised(name);
  if (n == name) return std::nullopt;
  return std::string(what) + " '" + name + "' would reach the daemon as '" + n +
         "' (it trims the ends and turns each run of whitespace into one space); give '" + n +
         "'";
}

struct CommonText {  // options whose "given but empty" is an error
  std::string server, cert, key, ca;
};

void add_common(CLI::App& app, Common& common, CommonText& text) {
  app.add_option("--server", text.server,
                 "Daemon address: unix:/path, /path, host:port, tcp://host:port, [ipv6]:port, "
                 "tls://host:port (default: $GLOCKD_SERVER, else /run/glockd/socket when it "
                 "exists, else 127.0.0.1:9999)")
      ->type_name("ADDR");
  app.add_option("--cert", text.cert,
                 "tls:// only: our client certificate, PEM, intermediates after it (default: "
                 "$GLOCK_CERT)")
      ->type_name("FILE");
  app.add_option("--key", text.key,
                 "tls:// only: the certificate's private key, PEM, unencrypted (default: "
                 "$GLOCK_KEY without --cert; else in the --cert file)")
      ->type_name("FILE");
  app.add_option("--ca", text.ca,
                 "tls:// only: the CA certificate(s) the server's certificate must chain to, "
                 "PEM (default: $GLOCK_CA, else the system's CAs)")
      ->type_name("FILE");
  app.add_option("--timeout", common.timeout_seconds,
                 "Seconds the daemon has to answer each request (beyond the wait of --wait); "
                 "connecting, TLS handshake included, has 5 s or this when shorter")
      ->check(CLI::Range(0.001, 86400.0))
      ->type_name("SECONDS");
  app.add_option("--keepalive", common.keepalive_seconds,
                 "TCP keepalive idle seconds; a dead link is noticed about 3x this later, well "
                 "before the daemon drops the lock (0: off)")
      ->check(CLI::Range(0, 3600))
      ->type_name("SECONDS");
}

int usage(const std::string& message) {
  complain(message + " (see glock --help)");
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything after the first "--" is the command to run, verbatim: CLI11
  // never sees it, so CMD's own options cannot be taken for glock's.
  std::vector<char*> ours(argv, argv + argc);
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      ours.assign(argv, argv + i);
      command.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  const bool had_separator = static_cast<int>(ours.size()) < argc;

  CLI::App app{"glock: take a glockd lock from the shell, run a command under it, and see "
               "who holds what.",
               "glock"};
  app.set_version_flag("--version", std::string("glock ") + GLOCKD_VERSION);
  app.footer(kExitCodes);
  app.require_subcommand(1);
  Common common;
  CommonText common_text;
  add_common(app, common, common_text);

  ExecOptions exec;
  std::string wait_text = "0";
  std::string name_text;
  std::vector<std::string> positional_command;
  auto* ex = app.add_subcommand(
      "exec", "Take lock NAME, run CMD with it held, release it when CMD ends: "
              "glock exec [options] NAME -- CMD [ARGS...]");
  ex->fallthrough();
  ex->add_option("-w,--wait", wait_text,
                 "Milliseconds to wait for the lock (0: fail at once, like flock -n; "
                 "'forever': no end)")
      ->type_name("MS|forever");
  ex->add_flag("-n,--nonblock", [&](std::int64_t) { wait_text = "0"; },
               "Fail at once if the lock is held (the default; same as --wait 0)");
  ex->add_flag("-s,--shared", exec.shared,
               "Take the shared lock NAME (a name space of its own, apart from exclusive locks)");
  ex->add_option("--limit", exec.limit,
                 "Take one of N slots of the semaphore NAME (shared locks, via sw); implies "
                 "--shared")
      ->check(CLI::Range(1u, 2147483647u))
      ->type_name("N");
  ex->add_option("--token-env", exec.token_env,
                 "Put the lock's fencing token in environment variable VAR for CMD "
                 "(exclusive locks only)")
      ->type_name("VAR");
  ex->add_option("-E,--conflict-exit-code", exec.conflict_exit_code,
                 "Exit code when the lock is busy or the wait times out (default 75)")
      ->check(CLI::Range(0, 255))
      ->type_name("N");
  ex->add_option("--kill-after", exec.kill_after_seconds,
                 "When the lock is lost: seconds between CMD's SIGTERM and SIGKILL")
      ->check(CLI::Range(0.0, 86400.0))
      ->type_name("SECONDS");
  ex->add_flag("--keep-running", exec.keep_running,
               "When the lock is lost, leave CMD running (glock still exits 74)");
  ex->add_option("--name", name_text,
                 "Register this client as NAME (iam) while it holds the lock, so glock locks "
                 "shows it (default: USER@HOST CMD[PID]; empty: do not register)");
  ex->add_option("NAME", exec.lock, "The lock's name")->required();
  ex->add_option("CMD", positional_command, "The command and its arguments (after --)");

  std::string inspect_lock;
  auto* in = app.add_subcommand("inspect", "Show whether lock NAME is held, and by whom");
  in->fallthrough();
  in->add_option("NAME", inspect_lock, "The lock's name")->required();
  in->add_flag("--json", common.json, "Print JSON");

  auto* lk = app.add_subcommand(
      "locks", "List every held lock, exclusive and shared, with its holders");
  lk->fallthrough();
  lk->add_flag("--json", common.json, "Print JSON");

  std::optional<std::string> who_name;
  auto* wh = app.add_subcommand("who", "List the registered clients (iam), or those named NAME");
  wh->fallthrough();
  wh->add_option("NAME", who_name, "Only clients registered as NAME");
  wh->add_flag("--json", common.json, "Print JSON");

  auto* st = app.add_subcommand("stats", "Show the daemon's counters (the q request)");
  st->fallthrough();
  st->add_flag("--json", common.json, "Print JSON");

  try {
    app.parse(static_cast<int>(ours.size()), ours.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  if (app.count("--server") > 0) common.server = common_text.server;
  struct FileOption {
    const char* flag;
    const std::string& text;
    std::optional<std::string>& value;
  };
  for (const FileOption& f : {FileOption{"--cert", common_text.cert, common.cert},
                              FileOption{"--key", common_text.key, common.key},
                              FileOption{"--ca", common_text.ca, common.ca}}) {
    if (app.count(f.flag) == 0) continue;
    if (f.text.empty()) return usage(std::string(f.flag) + " needs a file name, not ''");
    f.value = f.text;
  }

  const std::pair<const char*, std::string> names[] = {
      {"the lock name", ex->parsed() ? exec.lock : inspect_lock},
      {"the client name", ex->parsed() ? name_text : who_name.value_or("")}};
  for (const auto& [what, name] : names) {
    if (auto problem = name_problem(what, name)) return usage(*problem);
  }
  if (ex->parsed()) {
    if (ex->count("--name") > 0) common.name = name_text;
    if (had_separator) {
      if (!positional_command.empty()) {
        return usage("give the command once, after --");
      }
      exec.command = std::move(command);
    } else {
      exec.command = std::move(positional_command);
    }
    if (exec.command.empty()) return usage("exec needs a command: glock exec NAME -- CMD [ARGS...]");
    if (!parse_wait(wait_text, exec.wait_ms)) {
      return usage("--wait takes milliseconds (a whole number) or 'forever', not '" + wait_text + "'");
    }
    if (exec.limit > 0) exec.shared = true;
    if (!exec.token_env.empty() && exec.shared) {
      return usage("--token-env is for exclusive locks: shared locks and semaphores have no "
                   "fencing token");
    }
    if (ex->count("--token-env") > 0 && !valid_env_name(exec.token_env)) {
      return usage("--token-env needs a variable name (letters, digits, _), not '" +
                   exec.token_env + "'");
    }
    return run_exec(common, exec);
  }
  if (had_separator) return usage("'--' and a command belong to glock exec");
  if (in->parsed()) return run_inspect(common, inspect_lock);
  if (lk->parsed()) return run_locks(common);
  if (wh->parsed()) return run_who(common, who_name);
  if (st->parsed()) return run_stats(common);
  return usage("name a subcommand: exec, inspect, locks, who or stats");
}
