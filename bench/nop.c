/*  The smallest program: exits 0. Built static by bench/harness.sh, it makes
    the W4 info row where a job's cost is the runner's own (fork or spawn,
    exec, wait, output) without a dynamic loader starting up each time. */
int
main (void)
{
    return 0;
}
