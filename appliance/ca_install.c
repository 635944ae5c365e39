/*
 * `sluicectl ca install`: sluice's CA into a running container's trust
 * store, through the Docker Engine API alone (no docker CLI, nothing run on
 * the host side of the container):
 *
 *   1. exec a probe: which trust-store tool the image has
 *      (update-ca-certificates: Debian, Ubuntu, Alpine; update-ca-trust:
 *      RHEL, Fedora, CentOS), and whether it has a shell at all;
 *   2. PUT a one-file tar archive with the CA where that tool reads it;
 *   3. exec the tool.
 *
 * Every failure says exactly why: no shell (distroless), no trust-store
 * tool, a read-only root filesystem, the tool's own error output.
 */
#include "ca_install.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker_api.h"
#include "jsonp.h"
#include "sl_buf.h"

#define EXEC_TIMEOUT_MS 20000
#define OUTPUT_MAX      8192

static const char probe_script[] =
    "if command -v update-ca-certificates >/dev/null 2>&1; then echo debian; "
    "elif command -v update-ca-trust >/dev/null 2>&1; then echo rhel; else echo none; fi";

/* Docker's exec output is multiplexed: 8-byte frame headers (stream, 0, 0,
 * 0, size big endian) before each piece. Keeps the text, drops headers. */
static void demux(const struct sl_buf *raw, char *out, size_t outlen)
{
    size_t o = 0, i = 0;

    while (i + 8 <= raw->len && o + 1 < outlen) {
        const uint8_t *h = raw->data + i;
        size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
        i += 8;
        if (n > raw->len - i)
            n = raw->len - i;
        size_t take = n < outlen - 1 - o ? n : outlen - 1 - o;
        memcpy(out + o, raw->data + i, take);
        o += take;
        i += n;
    }
    out[o] = '\0';
    while (o > 0 && (out[o - 1] == '\n' || out[o - 1] == '\r'))
        out[--o] = '\0';
}

/* The message Docker puts in an error reply ({"message": "..."}). */
static void docker_message(const struct sl_buf *reply, char *out, size_t outlen)
{
    char err[128];
    struct jsonp_doc *d = jsonp_parse((const char *)reply->data, reply->len, err, sizeof(err));

    snprintf(out, outlen, "%s",
             d ? jsonp_str(jsonp_get(jsonp_root(d), "message"), "unknown error") : "unknown error");
    jsonp_free(d);
}

/* Runs argv (a JSON array text) in the container; output and exit code. */
static int exec_in(const char *sock, const char *id, const char *argv_json, char *output,
                   size_t outlen, int *exit_code, char *err, size_t errlen)
{
    char target[256], body[1024], msg[256];
    struct sl_buf reply;
    int status;

    sl_buf_init(&reply, 64 * 1024);
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/exec", id);
    snprintf(body, sizeof(body),
             "{\"AttachStdout\":true,\"AttachStderr\":true,\"User\":\"0\",\"Cmd\":%s}", argv_json);
    if (docker_call(sock, "POST", target, "application/json", body, strlen(body), &status, &reply,
                    err, errlen) != 0)
        goto fail;
    if (status != 201) {
        docker_message(&reply, msg, sizeof(msg));
        snprintf(err, errlen, "exec: %s", msg);
        goto fail;
    }
    char jerr[128];
    struct jsonp_doc *d = jsonp_parse((const char *)reply.data, reply.len, jerr, sizeof(jerr));
    char exec_id[80];
    snprintf(exec_id, sizeof(exec_id), "%s",
             d ? jsonp_str(jsonp_get(jsonp_root(d), "Id"), "") : "");
    jsonp_free(d);
    if (exec_id[0] == '\0') {
        snprintf(err, errlen, "exec: Docker's reply has no exec ID");
        goto fail;
    }

    /* Not detached: the reply is the command's output until it exits. */
    reply.len = 0;
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/exec/%s/start", exec_id);
    const char *start = "{\"Detach\":false,\"Tty\":false}";
    if (docker_call(sock, "POST", target, "application/json", start, strlen(start), &status, &reply,
                    err, errlen) != 0)
        goto fail;
    if (status != 200) {
        docker_message(&reply, msg, sizeof(msg));
        snprintf(err, errlen, "exec start: %s", msg);
        goto fail;
    }
    demux(&reply, output, outlen);

    reply.len = 0;
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/exec/%s/json", exec_id);
    if (docker_call(sock, "GET", target, NULL, NULL, 0, &status, &reply, err, errlen) != 0)
        goto fail;
    d = jsonp_parse((const char *)reply.data, reply.len, jerr, sizeof(jerr));
    const struct jsonp_value *code = d ? jsonp_get(jsonp_root(d), "ExitCode") : NULL;
    *exit_code = code && code->type == JSONP_NUMBER ? (int)code->num : -1;
    jsonp_free(d);
    sl_buf_free(&reply);
    return 0;
fail:
    sl_buf_free(&reply);
    return -1;
}

/* A ustar archive holding one regular file at path (relative). */
static size_t tar_one(uint8_t *out, size_t cap, const char *path, const char *data, size_t len)
{
    size_t total = 512 + (len + 511) / 512 * 512 + 1024;
    unsigned sum = 0;

    if (total > cap || strlen(path) >= 100)
        return 0;
    memset(out, 0, total);
    memcpy(out, path, strlen(path));
    snprintf((char *)out + 100, 8, "%07o", 0644);
    snprintf((char *)out + 108, 8, "%07o", 0);
    snprintf((char *)out + 116, 8, "%07o", 0);
    char size[24];
    snprintf(size, sizeof(size), "%011llo", (unsigned long long)len); /* len < 8 GiB */
    memcpy(out + 124, size, 11);
    snprintf((char *)out + 136, 12, "%011o", 0);
    out[156] = '0';
    memcpy(out + 257, "ustar", 6);
    memcpy(out + 263, "00", 2);
    memset(out + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += out[i];
    snprintf((char *)out + 148, 8, "%06o", sum);
    memcpy(out + 512, data, len);
    return total;
}

int sl_ca_install(const char *docker_sock, const char *id, const char *pem, char *msg,
                  size_t msglen)
{
    char out[OUTPUT_MAX], err[512], target[512];
    int code = -1, status;

    /* 1. Which store, if any (the script has no character JSON escapes). */
    char probe[512];
    snprintf(probe, sizeof(probe), "[\"/bin/sh\",\"-c\",\"%s\"]", probe_script);
    if (exec_in(docker_sock, id, probe, out, sizeof(out), &code, err, sizeof(err)) != 0) {
        if (strstr(err, "no such file") || strstr(err, "executable file not found"))
            snprintf(msg, msglen,
                     "no shell in the container (distroless image?): bake the CA into the image "
                     "instead");
        else
            snprintf(msg, msglen, "%s", err);
        return -1;
    }
    int debian = strcmp(out, "debian") == 0, rhel = strcmp(out, "rhel") == 0;
    if (code != 0 || (!debian && !rhel)) {
        snprintf(msg, msglen,
                 "no trust-store tool (update-ca-certificates or update-ca-trust) in the "
                 "container: install the ca-certificates package, or set SSL_CERT_FILE to a "
                 "bundle that includes the CA");
        return -1;
    }

    /* 2. The file, where the tool reads it. */
    const char *file = debian ? "usr/local/share/ca-certificates/sluice-ca.crt"
                              : "etc/pki/ca-trust/source/anchors/sluice-ca.crt";
    size_t cap = strlen(pem) + 4096;
    uint8_t *tar = malloc(cap);
    size_t tlen = tar ? tar_one(tar, cap, file, pem, strlen(pem)) : 0;
    struct sl_buf reply;
    sl_buf_init(&reply, 64 * 1024);
    snprintf(target, sizeof(target), DOCKER_API_PREFIX "/containers/%s/archive?path=/", id);
    int rc = tlen ? docker_call(docker_sock, "PUT", target, "application/x-tar", tar, tlen, &status,
                                &reply, err, sizeof(err))
                  : -1;
    free(tar);
    if (rc != 0) {
        snprintf(msg, msglen, "copying the CA: %s", tlen ? err : "out of memory");
        sl_buf_free(&reply);
        return -1;
    }
    if (status != 200) {
        char why[256];
        docker_message(&reply, why, sizeof(why));
        sl_buf_free(&reply);
        if (status == 403 || strstr(why, "read-only"))
            snprintf(msg, msglen,
                     "the container's root filesystem is read-only (%s): bake the CA into the "
                     "image, or mount it and set SSL_CERT_FILE",
                     why);
        else
            snprintf(msg, msglen, "copying the CA: %s", why);
        return -1;
    }
    sl_buf_free(&reply);

    /* 3. The store, refreshed. */
    const char *cmd = debian ? "[\"update-ca-certificates\"]" : "[\"update-ca-trust\",\"extract\"]";
    if (exec_in(docker_sock, id, cmd, out, sizeof(out), &code, err, sizeof(err)) != 0) {
        snprintf(msg, msglen, "%s", err);
        return -1;
    }
    if (code != 0) {
        snprintf(msg, msglen, "%s failed (exit %d): %s",
                 debian ? "update-ca-certificates" : "update-ca-trust", code, out);
        return -1;
    }
    snprintf(msg, msglen,
             "added /%s and ran %s. Runtimes with their own store need: "
             "SSL_CERT_FILE=%s NODE_EXTRA_CA_CERTS=/%s REQUESTS_CA_BUNDLE=%s",
             file, debian ? "update-ca-certificates" : "update-ca-trust extract",
             debian ? "/etc/ssl/certs/ca-certificates.crt" : "/etc/pki/tls/certs/ca-bundle.crt",
             file,
             debian ? "/etc/ssl/certs/ca-certificates.crt" : "/etc/pki/tls/certs/ca-bundle.crt");
    return 0;
}
