// glockd-echo: the benchmark's ceiling. glockd's own loop, with every
// request line answered by one fixed string and no lock table behind it.
#include "serve.hpp"

namespace {

class EchoHandler final : public glockd::LineHandler {
 public:
  glockd::Outcome handle_line(glockd::Session&, std::string_view, std::string& out) override {
    out.append("1 Lock Get Success: echo\n");
    return {};
  }
};

}  // namespace

int main(int argc, char** argv) {
  EchoHandler echo;
  return glockd::serve(argc, argv, &echo);
}
