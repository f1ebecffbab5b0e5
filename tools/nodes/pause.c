/*
 * pause: the PID 1 of a pod sandbox on the real-node tier.
 *
 * It holds the pod's namespaces open by sleeping forever, reaps any zombie re-parented to it, and exits 0 on SIGINT
 * or SIGTERM. As PID 1 the kernel drops every signal it has no handler for, hence explicit handlers.
 *
 * Built static by tools/nodes/images.sh:  gcc -static -Os -s -o pause pause.c
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: pause (blocks until SIGINT or SIGTERM; reaps children)\n";
    (void)argv;
    if (argc > 1) {
        (void)!write(STDERR_FILENO, usage, sizeof usage - 1);
        return 2;
    }
    if (handle(SIGINT, on_stop, 0) || handle(SIGTERM, on_stop, 0) ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART)) {
        static const char failed[] = "pause: sigaction failed\n";
        (void)!write(STDERR_FILENO, failed, sizeof failed - 1);
        return 1;
    }
    for (;;) {
        pause();
    }
}
