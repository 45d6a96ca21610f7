/* options.h: the report's one options struct and its one parser, shared by every subcommand so
 * that --sample, --focus, --ignore, --nodecount, --json ... behave the same everywhere (after
 * git's parse-options and pprof). Parsing never touches a dump. */
#ifndef MP_OPTIONS_H
#define MP_OPTIONS_H

#include <regex.h>
#include <stdbool.h>
#include <stdio.h>

enum sample_index { S_ALLOC_OBJECTS, S_ALLOC_SPACE, S_INUSE_OBJECTS, S_INUSE_SPACE, NSAMPLES };

extern const char *const sample_names[NSAMPLES];

struct options {
	const char *cmd; /* subcommand */
	enum sample_index sample;
	bool sample_set; /* --sample given */
	bool lines;      /* --lines: per file:line instead of per function */
	long nodecount; /* --nodecount N: rows shown (0 = all; -1: not given, the view's default) */
	const char *focus;  /* --focus RE */
	const char *ignore; /* --ignore RE */
	regex_t focus_re, ignore_re;
	const char *growth_fn; /* --growth-fn RE */
	regex_t growth_fn_re;
	bool json;               /* --json */
	const char *output;      /* -o FILE */
	const char *format;      /* --format json|collapsed|pprof */
	double fail_if_increase; /* --fail-if-increase PCT; < 0 when not given */
	double nodefraction;     /* --nodefraction F (tree); < 0 when not given */
	bool quiet;              /* -q: no warnings about modules */
	bool full_names;       /* --full-names: C++ names with template arguments and parameters */
	const char *debug_dir; /* --debug-dir DIRS */
	bool stats; /* --stats: counts and timings of loading and symbolizing to stderr */
	bool help;
	char **args; /* operands left after the options */
	int nargs;
};

/* Compiles a regular expression from the command line (POSIX ERE), or dies with exit 1 naming
 * WHAT (the option, or the operand). */
void compile_regex(regex_t *re, const char *pat, const char *what);

/* Parses argv (after the subcommand name) into o; dies with exit 1 on a bad option. */
void parse_options(struct options *o, int argc, char **argv);
/* Prints the options table (for --help). */
void print_option_help(FILE *f);

#endif
