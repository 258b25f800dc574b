/*
 * coordinator/sanitize_dlclose.c: built into vaefarm only with -DVF_SANITIZE=ON. Open MPI
 * dlopens its components and dlcloses them in MPI_Finalize; LeakSanitizer then cannot name the
 * module of what they left allocated ("<unknown module>"), so tests/lsan.supp could not
 * suppress Open MPI's own leaks and ours would drown in them. Defined in the executable, this
 * dlclose interposes libc's for every library: modules stay mapped until exit (what the kernel
 * does anyway), and LSan names them.
 */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
