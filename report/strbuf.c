/* strbuf.c: the growable string builder (see strbuf.h). Grows geometrically; never
 * returns NULL (xrealloc dies on out-of-memory). */
#include <stdint.h>
#include <string.h>

#include "strbuf.h"
#include "usage.h"

void sb_grow(struct strbuf *sb, size_t n)
{
	if (sb->len + n + 1 <= sb->alloc)
		return;
	if (n > SIZE_MAX / 4 - sb->len)
		die("out of memory (string of %zu bytes)", sb->len + n);
	size_t want = sb->alloc ? sb->alloc : 64;
	while (want < sb->len + n + 1)
		want *= 2;
	sb->buf = xrealloc(sb->buf, want);
	sb->alloc = want;
}

void sb_add(struct strbuf *sb, const void *data, size_t n)
{
	sb_grow(sb, n);
	if (n)
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void sb_addch(struct strbuf *sb, int c)
{
	sb_grow(sb, 1);
	sb->buf[sb->len++] = (char)c;
	sb->buf[sb->len] = '\0';
}

void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	sb_grow(sb, 64);
	int n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		die("bad format string");
	if ((size_t)n >= sb->alloc - sb->len) {
		sb_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
	}
	sb->len += (size_t)n;
}

void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(sb, fmt, ap);
	va_end(ap);
}

void sb_pad(struct strbuf *sb, size_t from, size_t width)
{
	while (sb->len - from < width)
		sb_addch(sb, ' ');
}

size_t utf8_next(const char *s, bool *valid)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char c = p[0];
	*valid = true;
	if (c < 0x80)
		return 1;
	/* the lead byte gives the length and the range of the second byte (which rules out
	 * overlong forms, surrogates and code points past U+10FFFF); later bytes are 80..BF */
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		*valid = false; /* a stray continuation byte, C0, C1, F5..FF */
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if (p[i] < lo || p[i] > hi) { /* (the terminating NUL stops here too) */
			*valid = false;
			return i; /* the lead byte and the bytes that could still have begun it */
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return len;
}

void sb_json_str(struct strbuf *sb, const char *s)
{
	if (!s) {
		sb_adds(sb, "null");
		return;
	}
	sb_addch(sb, '"');
	for (const char *p = s; *p;) {
		unsigned char c = (unsigned char)*p;
		switch (c) {
		case '"':
			sb_adds(sb, "\\\"");
			p++;
			continue;
		case '\\':
			sb_adds(sb, "\\\\");
			p++;
			continue;
		case '\n':
			sb_adds(sb, "\\n");
			p++;
			continue;
		case '\t':
			sb_adds(sb, "\\t");
			p++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			sb_addf(sb, "\\u%04x", c);
			p++;
			continue;
		}
		/* Names and paths are bytes: valid UTF-8 goes out as it is (JSON is UTF-8), each
		 * ill-formed sequence as one U+FFFD, so the output is always valid JSON.
		 * U+2028 and U+2029 are escaped for JavaScript parsers older than ES2019. */
		bool valid;
		size_t n = utf8_next(p, &valid);
		if (!valid)
			sb_adds(sb, "\\ufffd");
		else if (n == 3 && c == 0xe2 && (unsigned char)p[1] == 0x80 &&
		         ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
			sb_adds(sb, (unsigned char)p[2] == 0xa8 ? "\\u2028" : "\\u2029");
		else
			sb_add(sb, p, n);
		p += n;
	}
	sb_addch(sb, '"');
}

const char *sb_str(const struct strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void sb_release(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
}

char *sb_detach(struct strbuf *sb)
{
	char *s = sb->buf ? sb->buf : xstrdup("");
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
	return s;
}

int sb_write(const struct strbuf *sb, FILE *f)
{
	if (sb->len && fwrite(sb->buf, 1, sb->len, f) != sb->len)
		return -1;
	return 0;
}
