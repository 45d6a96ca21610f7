/* options.c: the one option parser (see options.h). Every subcommand accepts every option, so a
 * flag means the same thing in every view; it exits 1 on a malformed command line and never
 * reads a file. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "strbuf.h"
#include "usage.h"

const char *const sample_names[NSAMPLES] = {"alloc_objects", "alloc_space", "inuse_objects",
                                            "inuse_space"};

enum opt_type { OPT_BOOL, OPT_LONG, OPT_STRING, OPT_DOUBLE, OPT_SAMPLE };

struct option_spec {
	const char *name; /* long name, without -- */
	char short_name;  /* 0 if none */
	enum opt_type type;
	size_t field; /* offsetof(struct options, ...) */
	const char *arg;
	const char *help;
	const char *only; /* the commands it means something to (space-separated), or NULL: all */
};

#define F(x) offsetof(struct options, x)

static const struct option_spec specs[] = {
    {"sample", 0, OPT_SAMPLE, F(sample), "INDEX",
     "alloc_objects (default), alloc_space, inuse_objects or inuse_space", NULL},
    {"lines", 0, OPT_BOOL, F(lines), NULL, "per source line instead of per function", NULL},
    {"nodecount", 'n', OPT_LONG, F(nodecount), "N", "show at most N rows (0: all)", NULL},
    {"focus", 0, OPT_STRING, F(focus), "RE", "keep only chains through a function matching RE",
     NULL},
    {"ignore", 0, OPT_STRING, F(ignore), "RE", "drop chains through a function matching RE", NULL},
    {"growth-fn", 0, OPT_STRING, F(growth_fn), "RE",
     "growth, flame: also treat functions matching RE as map growth functions", "growth flame"},
    {"nodefraction", 0, OPT_DOUBLE, F(nodefraction), "F",
     "tree: fold nodes under F of the total (default 0.001; 0: none)", "tree"},
    {"json", 0, OPT_BOOL, F(json), NULL, "views, export: print JSON instead of text",
     "top tree peek growth diff export"},
    {"output", 'o', OPT_STRING, F(output), "FILE", "write to FILE instead of stdout (-: stdout)",
     NULL},
    {"format", 0, OPT_STRING, F(format), "FMT", "export: json, collapsed or pprof", "export"},
    {"fail-if-increase", 0, OPT_DOUBLE, F(fail_if_increase), "PCT",
     "diff: exit 3 when the total grows by more than PCT percent", "diff"},
    {"quiet", 'q', OPT_BOOL, F(quiet), NULL,
     "no warnings about missing, rebuilt or stripped binaries", NULL},
    {"full-names", 0, OPT_BOOL, F(full_names), NULL,
     "C++ names with template arguments and parameters (views, collapsed, flame)", NULL},
    {"debug-dir", 0, OPT_STRING, F(debug_dir), "DIRS",
     "look for separate debug files in DIRS too (colon-separated)", NULL},
    {"stats", 0, OPT_BOOL, F(stats), NULL,
     "print counts and timings of reading and symbolizing to stderr", NULL},
    {"help", 'h', OPT_BOOL, F(help), NULL, "show help for the command", NULL},
};

void print_option_help(FILE *f)
{
	fprintf(f, "Options (for every command, but those that name theirs):\n");
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		const struct option_spec *s = &specs[i];
		char left[64];
		snprintf(left, sizeof(left), "%c%c%s--%s%s%s", s->short_name ? '-' : ' ',
		         s->short_name ? s->short_name : ' ', s->short_name ? ", " : "  ", s->name,
		         s->arg ? " " : "", s->arg ? s->arg : "");
		fprintf(f, "  %-28s %s\n", left, s->help);
	}
}

/* Whether pat holds a back-reference (\1 to \9 outside a bracket expression). POSIX ERE has
 * none, but glibc's regcomp takes them, and its matcher for them takes exponential time:
 * '^(.*)(.*)(.*)\3\2\1x$' on a 300-character C++ name ran for minutes. */
static bool has_backref(const char *pat)
{
	for (const char *c = pat; *c; c++) {
		if (*c == '\\') {
			if (c[1] >= '1' && c[1] <= '9')
				return true;
			if (c[1])
				c++;
		} else if (*c == '[') {
			/* a bracket expression: a ']' first (after an optional '^') is a member */
			c++;
			if (*c == '^')
				c++;
			if (*c == ']')
				c++;
			for (; *c && *c != ']'; c++)
				if (*c == '[' && (c[1] == ':' || c[1] == '.' || c[1] == '=')) {
					const char *end = strstr(c + 2, (char[]){c[1], ']', 0});
					if (!end)
						break;
					c = end + 1;
				}
			if (!*c)
				return false;
		}
	}
	return false;
}

void compile_regex(regex_t *re, const char *pat, const char *what)
{
	if (has_backref(pat))
		die_usage("%s '%s': back-references (\\1 ... \\9) are not POSIX extended regular "
		          "expressions, and matching them can take exponential time",
		          what, pat);
	int r = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);
	if (r) {
		char msg[256];
		regerror(r, re, msg, sizeof(msg));
		die_usage("%s '%s': %s", what, pat, msg);
	}
}

static void set(struct options *o, const struct option_spec *s, const char *val)
{
	void *p = (char *)o + s->field;
	char *end;
	switch (s->type) {
	case OPT_BOOL:
		*(bool *)p = true;
		break;
	case OPT_STRING:
		if (!*val && s->field == F(output))
			die_usage(
			    "--output wants a file name (or - for stdout), not an empty string");
		if (s->field == F(debug_dir) && *(const char **)p) {
			/* given again: one more list of directories, searched after the first (as
			 * gdb's debug-file-directory takes several); kept for the whole run */
			static struct strbuf dirs = STRBUF_INIT;
			if (!dirs.len)
				sb_adds(&dirs, *(const char **)p);
			sb_addf(&dirs, ":%s", val);
			*(const char **)p = sb_str(&dirs);
			break;
		}
		*(const char **)p = val;
		break;
	case OPT_LONG:
		/* plain decimal digits: no sign, no blank, no hex (strtol would take " +5") */
		errno = 0;
		*(long *)p = isdigit((unsigned char)val[0]) ? strtol(val, &end, 10) : -1;
		if (*(long *)p < 0 || errno || *end)
			die_usage("--%s wants a whole number >= 0, not '%s'", s->name, val);
		break;
	case OPT_DOUBLE:
		/* a finite decimal: strtod would also take hex (0x10), "nan" (which compares
		 * false with everything, so a gate given it could never trip) and "inf" */
		errno = 0;
		*(double *)p =
		    (isdigit((unsigned char)val[0]) || val[0] == '.') && !strpbrk(val, "xX")
		        ? strtod(val, &end)
		        : -1;
		if (*(double *)p < 0 || errno || *end)
			die_usage("--%s wants a decimal number >= 0, not '%s'", s->name, val);
		break;
	case OPT_SAMPLE:
		for (int i = 0; i < NSAMPLES; i++) {
			if (strcmp(val, sample_names[i]) == 0) {
				o->sample = (enum sample_index)i;
				o->sample_set = true;
				return;
			}
		}
		die_usage("--sample: unknown sample index '%s' (alloc_objects, alloc_space, "
		          "inuse_objects or inuse_space)",
		          val);
	}
}

static const struct option_spec *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0)
			return &specs[i];
	/* pprof spells it sample_index; accept that too */
	if (len == 12 && strncmp(name, "sample_index", len) == 0)
		return &specs[0];
	return NULL;
}

/* NAME or NAME=VALUE, when NAME is a long option: after "--", or after a single dash (-json,
 * -focus=RE, as pprof spells them). */
static const struct option_spec *find_single_dash_long(const char *arg, const char **val)
{
	const char *eq = strchr(arg, '=');
	const struct option_spec *s = find_long(arg, eq ? (size_t)(eq - arg) : strlen(arg));
	if (s && eq)
		*val = eq + 1;
	return s;
}

static const struct option_spec *find_short(char c)
{
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if (specs[i].short_name == c)
			return &specs[i];
	return NULL;
}

/* Whether cmd is one of the space-separated words of list. */
static bool applies(const char *list, const char *cmd)
{
	size_t n = strlen(cmd);
	for (const char *w = list; *w;) {
		size_t k = strcspn(w, " ");
		if (k == n && strncmp(w, cmd, n) == 0)
			return true;
		w += k;
		w += *w == ' ';
	}
	return false;
}

void parse_options(struct options *o, int argc, char **argv)
{
	o->fail_if_increase = -1;
	o->nodefraction = -1;
	o->nodecount = -1; /* no -n: each view's default (diff: 20 rows in text; others: all) */
	o->args = xcalloc((size_t)argc + 1, sizeof(char *));
	bool only_args = false;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (only_args || a[0] != '-' || a[1] == '\0') {
			o->args[o->nargs++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		const struct option_spec *s;
		const char *val = NULL;
		if (a[1] == '-') {
			/* --name, --name=value, --name value */
			s = find_single_dash_long(a + 2, &val);
			if (!s)
				die_usage("unknown option '%s'", a);
			if (s->type == OPT_BOOL && val)
				die_usage("option '--%s' takes no value", s->name);
		} else if ((s = a[2] ? find_single_dash_long(a + 1, &val) : NULL)) {
			/* pprof's single-dash long forms: -focus RE, -sample_index=alloc_space */
			if (s->type == OPT_BOOL && val)
				die_usage("option '-%s' takes no value", s->name);
		} else {
			/* short options, bundled as getopt does: -q, -qh, -n5, -qo FILE, -qoFILE */
			for (const char *c = a + 1;; c++) {
				s = find_short(*c);
				if (!s && c == a + 1 && !c[1])
					die_usage("unknown option '%s'", a);
				if (!s)
					die_usage("unknown option '-%c' in '%s'", *c, a);
				if (s->type != OPT_BOOL) {
					val = c[1] ? c + 1 : NULL;
					break;
				}
				if (!c[1])
					break; /* the last one: set below */
				set(o, s, NULL);
			}
		}
		if (s->type != OPT_BOOL && !val) {
			if (i + 1 >= argc)
				die_usage("option '--%s' needs a value (%s)", s->name, s->arg);
			val = argv[++i];
		}
		if (s->only && !applies(s->only, o->cmd))
			die_usage("option '--%s' is for %s only, not %s", s->name, s->only, o->cmd);
		set(o, s, val);
	}
	if (o->nodefraction > 1)
		die_usage("--nodefraction wants a fraction of the total from 0 to 1, not %g",
		          o->nodefraction);
	if (o->focus)
		compile_regex(&o->focus_re, o->focus, "--focus");
	if (o->ignore)
		compile_regex(&o->ignore_re, o->ignore, "--ignore");
	if (o->growth_fn)
		compile_regex(&o->growth_fn_re, o->growth_fn, "--growth-fn");
}
