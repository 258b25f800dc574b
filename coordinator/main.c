/* coordinator/main.c: the vaefarm program (DESIGN.md §8). */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("vaefarm %s\n", VF_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: vaefarm [run|plan|probe] ...\n");
    return 2;
}
