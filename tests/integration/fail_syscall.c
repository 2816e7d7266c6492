/* Runs a command under a seccomp filter that fails one system call with the
 * given errno: io_uring_setup as a container's default seccomp profile does
 * (EPERM) or a kernel built without io_uring does (ENOSYS); getrandom as a
 * kernel whose entropy pool is not ready yet does (EAGAIN).
 * Usage: fail_syscall io_uring_setup|getrandom EPERM|ENOSYS|EAGAIN command [args...] */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int lookup(const char* name, const char* const* names, const int* values, int n) {
  for (int i = 0; i < n; ++i)
    if (strcmp(name, names[i]) == 0) return values[i];
  return -1;
}

int main(int argc, char** argv) {
  static const char* const calls[] = {"io_uring_setup", "getrandom"};
  static const int call_nr[] = {__NR_io_uring_setup, __NR_getrandom};
  static const char* const errs[] = {"EPERM", "ENOSYS", "EAGAIN"};
  static const int err_nr[] = {EPERM, ENOSYS, EAGAIN};
  const int nr = argc < 4 ? -1 : lookup(argv[1], calls, call_nr, 2);
  const int err = argc < 4 ? -1 : lookup(argv[2], errs, err_nr, 3);
  if (nr < 0 || err < 0) {
    fprintf(stderr, "usage: %s io_uring_setup|getrandom EPERM|ENOSYS|EAGAIN command [args...]\n",
            argv[0]);
    return 2;
  }
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("seccomp");
    return 2;
  }
  execvp(argv[3], argv + 3);
  perror("execvp");
  return 2;
}
