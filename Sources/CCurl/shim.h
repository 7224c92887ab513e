/* Layer-0 shim for CCurl: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic: one typed helper per argument kind. */

typedef size_t (*patrol_curl_data_fn)(char *data, size_t size, size_t count, void *context);
typedef int (*patrol_curl_debug_fn)(CURL *handle, curl_infotype type, char *data, size_t size, void *context);

static inline CURLcode patrol_curl_setopt_long(CURL *curl, CURLoption option, long value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_off(CURL *curl, CURLoption option, curl_off_t value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_string(CURL *curl, CURLoption option, const char *value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_pointer(CURL *curl, CURLoption option, void *value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_data_fn(CURL *curl, CURLoption option, patrol_curl_data_fn value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode patrol_curl_setopt_debug_fn(CURL *curl, patrol_curl_debug_fn value)
{
	return curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, value);
}

typedef int (*patrol_curl_xferinfo_fn)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
				       curl_off_t ulnow);

static inline CURLcode patrol_curl_setopt_xferinfo_fn(CURL *curl, patrol_curl_xferinfo_fn value)
{
	return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, value);
}

static inline CURLcode patrol_curl_getinfo_long(CURL *curl, CURLINFO info, long *value)
{
	return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode patrol_curl_getinfo_string(CURL *curl, CURLINFO info, char **value)
{
	return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode patrol_curl_getinfo_off(CURL *curl, CURLINFO info, curl_off_t *value)
{
	return curl_easy_getinfo(curl, info, value);
}

/* CURLAUTH_* and CURL_GLOBAL_* are macros built from casts and shifts. */
static inline unsigned long patrol_curlauth_basic(void)
{
	return CURLAUTH_BASIC;
}

static inline long patrol_curl_global_default(void)
{
	return CURL_GLOBAL_DEFAULT;
}

static inline long patrol_curl_error_size(void)
{
	return CURL_ERROR_SIZE;
}
