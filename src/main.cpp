// glockd's entry point.
#include "serve.hpp"

int main(int argc, char** argv) { return glockd::serve(argc, argv, nullptr); }
