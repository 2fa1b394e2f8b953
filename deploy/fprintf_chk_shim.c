/* Debian's LLVM libunwind.a is built with _FORTIFY_SOURCE, so its debug
 * logging calls glibc's __fprintf_chk. musl has no _chk variants; this
 * forwards the one libunwind needs to plain vfprintf so the archive links
 * into a fully static musl binary. The flag argument only selects glibc's
 * extra checking, which musl does not offer. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
    va_list ap;
    int n;

    (void)flag;
    va_start(ap, format);
    n = vfprintf(stream, format, ap);
    va_end(ap);
    return n;
}
