/*
 * web_assets: the live page's files (index.html, app.js, style.css), built
 * into dynmemd by web/embed.py so that the page works without any file
 * installed; [host] web_dir may replace them at run time.
 */
#ifndef DYNMEM_WEB_ASSETS_H
#define DYNMEM_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
        const char *path; /* "/index.html" */
        const char *content_type;
        const unsigned char *data;
        size_t size;
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_n;

#endif
