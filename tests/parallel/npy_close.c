/* npy_close A.npy B.npy TOLERANCE: exit 0 when two float32 .npy files
 * (llmrt run --dump-logits) have the same shape and every row's max
 * |a − b| is within TOLERANCE × that row's max |a| (relative). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *load(const char *path, char *header, size_t header_size, long *count) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char magic[10];
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) return fclose(f), NULL;
    size_t len = magic[8] | (size_t)magic[9] << 8;
    if (len >= header_size || fread(header, 1, len, f) != len) return fclose(f), NULL;
    header[len] = '\0';
    long start = ftell(f);
    fseek(f, 0, SEEK_END);
    *count = (ftell(f) - start) / 4;
    fseek(f, start, SEEK_SET);
    float *data = malloc((size_t)*count * sizeof *data + 1);
    if (!data || fread(data, 4, (size_t)*count, f) != (size_t)*count) return fclose(f), free(data), NULL;
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: npy_close A.npy B.npy TOLERANCE\n"), 2;
    char ha[512], hb[512];
    long na = 0, nb = 0;
    float *a = load(argv[1], ha, sizeof ha, &na), *b = load(argv[2], hb, sizeof hb, &nb);
    if (!a || !b) return fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]), 1;
    if (strcmp(ha, hb) != 0 || na != nb) return fprintf(stderr, "shapes differ: %s vs %s\n", ha, hb), 1;
    char *shape = strstr(ha, "'shape': (");
    long rows = shape ? strtol(shape + 10, NULL, 10) : 1, cols = rows > 0 ? na / rows : na;
    double tolerance = atof(argv[3]), worst = 0;
    for (long r = 0; r < rows; r++) {
        double scale = 0, diff = 0;
        for (long c = 0; c < cols; c++) {
            scale = fmax(scale, fabs(a[r * cols + c]));
            diff = fmax(diff, fabs((double)a[r * cols + c] - b[r * cols + c]));
        }
        if (scale > 0) worst = fmax(worst, diff / scale);
    }
    printf("%ld x %ld logits: worst row max|a-b|/max|a| = %.3g (tolerance %.3g)\n", rows, cols, worst, tolerance);
    return worst <= tolerance ? 0 : 1;
}
