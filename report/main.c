/* main.c: the `mapprof` command: dispatches subcommands, prints help and the version. It holds
 * no logic of its own beyond that; exit 1 for usage errors, 2 for bad input (die()). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "usage.h"
#include "views.h"

#define MAPPROF_VERSION "0.1.0"

struct command {
	const char *name;
	int (*fn)(struct options *);
	const char *usage;
	const char *summary;
	const char *help;
};

static const struct command commands[] = {
    {"top", cmd_top, "mapprof top [OPTIONS] DUMP...",
     "flat and cumulative values per function, like pprof -top",
     "Flat and cumulative values per function (per line with --lines), largest first, like\n"
     "`pprof -top`. flat counts the allocations a function made itself (it called the\n"
     "allocator); cum counts every allocation made under it."},
    {"tree", cmd_tree, "mapprof tree [OPTIONS] DUMP...", "the call tree, callers above callees",
     "The call tree from the outermost callers (main) down to the functions that call the\n"
     "allocator, each node with its cumulative value and share of the total. --nodecount N\n"
     "keeps the N largest children of each node."},
    {"peek", cmd_peek, "mapprof peek [OPTIONS] REGEX DUMP...",
     "callers and callees (down to the allocator) of matching functions",
     "For each function matching REGEX: its callers (leading in, above), the function, and\n"
     "the calls below it down to the allocator, with values: the text equivalent of clicking\n"
     "a function in pprof's web view."},
    {"growth", cmd_growth, "mapprof growth [OPTIONS] DUMP...",
     "the chains that lead into container growth, and what pre-sizing saves",
     "The call chains that lead into container growth, found without being told where:\n"
     "chains through known hash-map growth functions (GHashTable, libstdc++ _M_rehash,\n"
     "CPython dicts, Perl, Lua, khash, abseil, ...; add your own with --growth-fn RE) and\n"
     "call sites whose request sizes step up geometrically (uthash's bucket doubling, realloc\n"
     "doubling). For each: the chain, the growth allocations, their sizes and factor, and\n"
     "what sizing the container once would save."},
    {"diff", cmd_diff, "mapprof diff [OPTIONS] BASE NEW",
     "per-function and per-chain differences between two profiles",
     "Per-function and per-chain differences NEW - BASE of the chosen sample, largest change\n"
     "first, with totals. Chains match by symbols (function, file:line), not addresses, so a\n"
     "rebuilt binary diffs. --fail-if-increase PCT exits 3 when the total grew by more."},
    {"merge", cmd_merge, "mapprof merge [OPTIONS] DUMP... [-o OUT]",
     "merge dumps into one dump file",
     "Merges dumps (e.g. a forking server's workers) into one dump file in the same format;\n"
     "chains merge by symbols, and a SOURCES record names every input (see the docs named\n"
     "by mapprof --help)."},
    {"export", cmd_export,
     "mapprof export [--format json|collapsed|pprof] [OPTIONS] DUMP... [-o F]",
     "write the profile as JSON, collapsed stacks or pprof protobuf",
     "The profile as JSON (the whole symbolized profile), collapsed stacks (flamegraph.pl,\n"
     "inferno, speedscope) or a gzip'd pprof profile.proto (go tool pprof, Pyroscope, Parca)."},
    {"flame", cmd_flame, "mapprof flame [OPTIONS] DUMP [NEW] [-o FILE.svg]",
     "write an SVG flame graph (or a diff flame graph)",
     "A self-contained SVG flame graph (hover, click to zoom, search); growth chains are\n"
     "highlighted. With two dumps, a diff flame graph (growth red, shrink blue)."},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Where cli.md is: installed beside the command (PREFIX/share/doc/mapprof/docs, `make install`), or
 * in the source tree it was built in (build/mapprof: docs/), else named as in the sources. */
static const char *cli_doc(void)
{
	static char found[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "docs/cli.md";
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return "docs/cli.md";
	*slash = '\0';
	static const char *const places[] = {"../share/doc/mapprof/docs/cli.md", "../docs/cli.md"};
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		char path[PATH_MAX * 2];
		snprintf(path, sizeof(path), "%s/%s", exe, places[i]);
		if (realpath(path, found))
			return found;
	}
	return "docs/cli.md";
}

static void main_help(FILE *f)
{
	fprintf(f, "usage: mapprof COMMAND [OPTIONS] DUMP...\n\n"
	           "Reads the dumps that libmapprof.so writes (LD_PRELOAD=libmapprof.so ./prog)\n"
	           "and shows where a program allocates, and where its containers grow.\n"
	           "A DUMP may be gzip'd; - is standard input.\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-8s %s\n\n", "help", "help COMMAND: the help of one command");
	print_option_help(f);
	fprintf(f,
	        "\nExit status: 0 ok, 1 usage error, 2 unreadable or invalid input, 3 diff\n"
	        "--fail-if-increase tripped. Examples, every option and the output formats:\n%s\n",
	        cli_doc());
}

static void command_help(const struct command *c)
{
	printf("usage: %s\n\n%s\n\n", c->usage, c->help);
	print_option_help(stdout);
}

int main(int argc, char **argv)
{
	/* Symbolization is offline: no debuginfod server unless asked for (it may hang without
	 * a network). */
	if (!getenv("MAPPROF_DEBUGINFOD"))
		unsetenv("DEBUGINFOD_URLS");
	if (argc < 2) {
		main_help(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		main_help(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("mapprof %s (dump format version %u)\n", MAPPROF_VERSION, MP_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help")) {
		if (argc < 3) {
			main_help(stdout);
			return 0;
		}
		const struct command *c = find_command(argv[2]);
		if (!c)
			die_usage("help: unknown command '%s'", argv[2]);
		command_help(c);
		return 0;
	}
	const struct command *c = find_command(cmd);
	if (!c)
		die_usage("unknown command '%s'", cmd);
	struct options o;
	memset(&o, 0, sizeof(o));
	o.cmd = c->name;
	usage_for(c->name);
	parse_options(&o, argc - 2, argv + 2);
	if (o.help) {
		command_help(c);
		free(o.args);
		return 0;
	}
	int r = c->fn(&o);
	if (o.focus)
		regfree(&o.focus_re);
	if (o.ignore)
		regfree(&o.ignore_re);
	if (o.growth_fn)
		regfree(&o.growth_fn_re);
	free(o.args);
	return r;
}
