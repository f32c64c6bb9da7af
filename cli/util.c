/*  cli/util.c - what the client subcommands share: Ctrl-C handling and a clock. */
#include "cli/cli.h"

#include <time.h>
#include <unistd.h>

volatile sig_atomic_t tr_cli_interrupted;

static void s_on_signal(int sig) {
    (void)sig;
    if (tr_cli_interrupted) _exit(130);   /* a second one: the user means it */
    tr_cli_interrupted = 1;
}

void tr_cli_catch(int sig, struct sigaction *old) {
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;   /* no SA_RESTART: a blocking wait returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, old);
}

void tr_cli_restore(int sig, const struct sigaction *old) {
    sigaction(sig, old, NULL);
}

double tr_cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
