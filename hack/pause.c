/*
 * pause: the sandbox (infrastructure) container of every pod on the local real nodes.
 *
 * containerd starts one per pod to hold its namespaces; it must run until it is told to stop and
 * reap orphans like the upstream pause container. The project builds it (`gcc -static -Os -s`),
 * wraps it in a one-layer OCI image and serves it from the cluster's own registry, which
 * containerd's `sandbox_image` names, so no image comes from outside this machine.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {.sa_handler = stop};
    struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
