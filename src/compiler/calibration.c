#include "compiler/calibration.h"

#include <stdlib.h>
#include <string.h>

const llmrt_calib_entry *llmrt_calibration_find(const llmrt_calibration *calib, const char *weight) {
    if (!calib || !weight) return NULL;
    for (int32_t i = 0; i < calib->count; i++)
        if (calib->entries[i].weight && strcmp(calib->entries[i].weight, weight) == 0) return &calib->entries[i];
    return NULL;
}

void llmrt_calibration_free(llmrt_calibration *calib) {
    if (!calib) return;
    for (int32_t i = 0; i < calib->count; i++) free(calib->entries[i].weight), free(calib->entries[i].channel_amax);
    free(calib->entries);
    free(calib);
}
