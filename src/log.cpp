// spdlog setup.
#include "log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace glockd {

void setup_logging(bool verbose) {
  auto logger = spdlog::stderr_logger_st("glockd");
  spdlog::set_default_logger(logger);
  // journald stamps every line itself; JOURNAL_STREAM says stderr goes there.
  if (std::getenv("JOURNAL_STREAM") != nullptr)
    spdlog::set_pattern("%l: %v");
  else
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::flush_on(spdlog::level::debug);
}

}  // namespace glockd
