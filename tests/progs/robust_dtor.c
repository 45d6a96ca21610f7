/* robust_dtor.c: a program whose libraries allocate and free in their destructors, one linked
 * (librobust_dtor1.so) and one dlopen'd and never closed (DLIB, librobust_dtor2.so); see
 * robust_dtor_lib.c. The program itself allocates nothing.
 *
 * usage: robust_dtor DLIB */
#include <dlfcn.h>

int dtor_lib_loaded_1(void);

int main(int argc, char **argv)
{
	if (argc != 2 || !dtor_lib_loaded_1())
		return 2;
	return dlopen(argv[1], RTLD_NOW) ? 0 : 3;
}
