/*
 * drop-noop: the whole program a pull pod's container runs.
 *
 * A pull pod only needs the kubelet to pull an image and start a container from it; what the
 * container runs does not matter, but it must exist. Images without a shell or `true`
 * (distroless, scratch) would fail to start, so an init container running the operator image
 * installs this static binary into a shared emptyDir (`drop-noop --install /drop/noop`) and the
 * target container runs it from there. Without `--install` it exits 0 at once, whatever the
 * arguments. Built with `gcc -static -Os -s`; it depends on nothing in the target image.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int install(const char *dest) {
    char buf[65536];
    ssize_t n;
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (in < 0 || out < 0) return 1;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) return 1;
            off += w;
        }
    }
    /* fchmod because the umask may have cleared bits from the mode given to open(). */
    if (n < 0 || fchmod(out, 0755) != 0 || close(out) != 0) return 1;
    close(in);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--install") == 0) return install(argv[2]);
    return 0;
}
