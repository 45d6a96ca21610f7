/* strbuf.h: the one growable string builder of the report tool (after git's strbuf).
 * Every text and JSON output is built in one; it never holds a dangling pointer after a
 * grow (callers re-read sb->buf) and dies on out-of-memory rather than returning NULL. */
#ifndef MP_STRBUF_H
#define MP_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct strbuf {
	char *buf; /* always NUL-terminated once anything was added; NULL before */
	size_t len;
	size_t alloc;
};

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* Makes room for n more bytes. */
void sb_grow(struct strbuf *sb, size_t n);
void sb_add(struct strbuf *sb, const void *data, size_t n);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addch(struct strbuf *sb, int c);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
/* Appends c until the visible width (bytes) of the buffer since `from` is `width`. */
void sb_pad(struct strbuf *sb, size_t from, size_t width);
/* Appends s as a JSON string literal; NULL becomes null. Valid UTF-8 is copied as it is; quotes,
 * backslashes, control characters, U+2028 and U+2029 are escaped; each ill-formed UTF-8
 * sequence (as utf8_next splits them) becomes \ufffd, so the result is valid JSON whatever
 * bytes s holds. */
void sb_json_str(struct strbuf *sb, const char *s);
/* The length of the next character of s (s[0] is not NUL): 1 to 4 bytes with *valid set when
 * it is well-formed UTF-8; otherwise *valid is cleared and the length is that of the ill-formed
 * part, the lead byte and the bytes that could have continued it (Unicode's "maximal subpart",
 * as decoders that replace each ill-formed sequence with one U+FFFD split them). */
size_t utf8_next(const char *s, bool *valid);
/* A C string of the contents ("" when empty); valid until the next change. */
const char *sb_str(const struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_release(struct strbuf *sb);
/* Hands the buffer to the caller (who frees it) and leaves sb empty. */
char *sb_detach(struct strbuf *sb);
/* Writes the contents to f; returns -1 on a write error. */
int sb_write(const struct strbuf *sb, FILE *f);

#endif
