/* report_stripped.c: calls into a stripped library (report_stripped_lib.c) whose allocation
 * sites have no symbol, for the exports' tests. It prints the counts of the three sites as one
 * JSON line and must never allocate through malloc outside them before printing it.
 *
 * Usage: report_stripped N */
#include <stdio.h>
#include <stdlib.h>

void report_stripped_run(int n);

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100;
	if (n < 1 || n > 10000)
		n = 100;
	report_stripped_run(n);
	printf("{\"objects\":[%d,%d,%d],\"bytes\":[%d,%d,%d],\"live_objects\":%d}\n", n, 2 * n,
	       3 * n, 40 * n, 160 * n, 360 * n, 2 * n);
	return 0;
}
