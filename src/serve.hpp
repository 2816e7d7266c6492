// serve(): the whole daemon, from the command line to the exit status.
#pragma once

#include "protocol.hpp"

namespace glockd {

// Runs glockd with these arguments; handler: where request lines go (null:
// the lock protocol; the benchmark's echo ceiling passes its own).
int serve(int argc, char** argv, LineHandler* handler);

}  // namespace glockd
