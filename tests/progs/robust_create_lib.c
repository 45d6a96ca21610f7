/* robust_create_lib.c: a library whose constructor runs the work of robust_create's "ctor" mode
 * (robust_create_ctor, in the executable that links it): a library's constructor runs before
 * that of a library preloaded after it, the profiler's. */
void robust_create_ctor(void);

__attribute__((constructor)) static void ctor(void)
{
	robust_create_ctor();
}
