/* Plan framing, validation and field readers.  Nothing here allocates, so the
 * readers are safe in the child between clone and execve. */
#include <string.h>

#include "plan.h"

/* Field layout of each record type (see plan.h for the letters). */
static const char *layout_of(uint16_t type)
{
    switch (type) {
    case CRN_PLAN_NS_NEW: return "I";
    case CRN_PLAN_NS_JOIN: return "Is";
    case CRN_PLAN_ID_MAP: return "IIII";
    case CRN_PLAN_ROOTFS: return "s";
    case CRN_PLAN_ROOT_PROPAGATION: return "Q";
    case CRN_PLAN_ROOT_READONLY: return "";
    case CRN_PLAN_MOUNT: return "QQIssss";
    case CRN_PLAN_DEVICE: return "IIIIIs";
    case CRN_PLAN_SYMLINK: return "ss";
    case CRN_PLAN_MASK: return "s";
    case CRN_PLAN_READONLY_PATH: return "s";
    case CRN_PLAN_HOSTNAME: return "s";
    case CRN_PLAN_DOMAINNAME: return "s";
    case CRN_PLAN_RLIMIT: return "IQQ";
    case CRN_PLAN_OOM_SCORE_ADJ: return "i";
    case CRN_PLAN_UMASK: return "I";
    case CRN_PLAN_USER: return "IIG";
    case CRN_PLAN_CAPS: return "QQQQQI";
    case CRN_PLAN_NO_NEW_PRIVS: return "";
    case CRN_PLAN_CWD: return "s";
    case CRN_PLAN_ARG: return "s";
    case CRN_PLAN_ENV: return "s";
    case CRN_PLAN_SECCOMP: return "Ib";
    case CRN_PLAN_BARRIER: return "s";
    case CRN_PLAN_CGROUP_PROCS: return "s";
    case CRN_PLAN_CGROUP_INTO: return "s";
    case CRN_PLAN_SYSCTL: return "ss";
    case CRN_PLAN_HOOK_PAUSE: return "";
    case CRN_PLAN_CONTROLLING_TTY: return "";
    case CRN_PLAN_SELINUX_LABEL: return "s";
    case CRN_PLAN_PERSONALITY: return "I";
    case CRN_PLAN_START_HOOK: return "IIsb";
    case CRN_PLAN_START_RESULT: return "s";
    case CRN_PLAN_CONSOLE: return "";
    case CRN_PLAN_SECCOMP_LISTENER: return "sb";
    case CRN_PLAN_NO_PIVOT: return "";
    case CRN_PLAN_MOUNT_LABEL: return "s";
    case CRN_PLAN_CHROOT: return "s";
    case CRN_PLAN_APPARMOR: return "s";
    case CRN_PLAN_LANDLOCK: return "IQQQ";
    case CRN_PLAN_LANDLOCK_PATH: return "Qs";
    case CRN_PLAN_LANDLOCK_PORT: return "QQ";
    default: return NULL;
    }
}

/* Does `layout` describe exactly the bytes in [p, end)? */
static int payload_fits(const char *layout, const unsigned char *p, const unsigned char *end)
{
    for (; *layout; layout++) {
        size_t left = (size_t)(end - p);
        switch (*layout) {
        case 'I': case 'i':
            if (left < 4) return 0;
            p += 4;
            break;
        case 'Q':
            if (left < 8) return 0;
            p += 8;
            break;
        case 's': {
            const unsigned char *nul = memchr(p, '\0', left);
            if (nul == NULL) return 0;
            p = nul + 1;
            break;
        }
        case 'b':
            p = end;
            break;
        case 'G': {
            uint32_t n;
            if (left < 4) return 0;
            memcpy(&n, p, 4);
            p += 4;
            if ((size_t)(end - p) != (size_t)n * 4) return 0;
            p = end;
            break;
        }
        }
    }
    return p == end;
}

static int read_header(const unsigned char *p, const unsigned char *end, crn_plan_rec *rec)
{
    uint32_t len;
    if ((size_t)(end - p) < CRN_PLAN_HEADER_LEN)
        return 0;
    memcpy(&rec->type, p, 2);
    memcpy(&len, p + 4, 4);
    if ((size_t)(end - p - CRN_PLAN_HEADER_LEN) < len)
        return 0;
    rec->len = len;
    rec->data = p + CRN_PLAN_HEADER_LEN;
    return 1;
}

int crn_plan_validate(const void *buf, size_t len, crn_error *err)
{
    const unsigned char *p = buf, *end = p + len;
    crn_plan_rec rec;

    if (len < CRN_PLAN_MAGIC_LEN || memcmp(p, CRN_PLAN_MAGIC, CRN_PLAN_MAGIC_LEN) != 0)
        return crn_error_set(err, EINVAL, "plan: bad magic", NULL);
    p += CRN_PLAN_MAGIC_LEN;
    while (p < end) {
        const char *layout;
        if (!read_header(p, end, &rec))
            return crn_error_set(err, EINVAL, "plan: truncated record", NULL);
        layout = layout_of(rec.type);
        if (layout == NULL)
            return crn_error_set(err, EINVAL, "plan: unknown record type", NULL);
        if (!payload_fits(layout, rec.data, rec.data + rec.len))
            return crn_error_set(err, EINVAL, "plan: malformed record", NULL);
        p = rec.data + rec.len;
    }
    return 0;
}

void crn_plan_iter_init(crn_plan_iter *it, const void *buf, size_t len)
{
    it->p = (const unsigned char *)buf + CRN_PLAN_MAGIC_LEN;
    it->end = (const unsigned char *)buf + len;
}

int crn_plan_next(crn_plan_iter *it, uint16_t type, crn_plan_rec *rec)
{
    while (it->p < it->end && read_header(it->p, it->end, rec)) {
        it->p = rec->data + rec->len;
        if (type == 0 || rec->type == type)
            return 1;
    }
    return 0;
}

int crn_plan_find(const void *buf, size_t len, uint16_t type, crn_plan_rec *rec)
{
    crn_plan_iter it;
    crn_plan_iter_init(&it, buf, len);
    return crn_plan_next(&it, type, rec);
}

size_t crn_plan_count(const void *buf, size_t len, uint16_t type)
{
    crn_plan_iter it;
    crn_plan_rec rec;
    size_t n = 0;
    crn_plan_iter_init(&it, buf, len);
    while (crn_plan_next(&it, type, &rec))
        n++;
    return n;
}

void crn_plan_cur_init(crn_plan_cur *c, const crn_plan_rec *rec)
{
    c->p = rec->data;
    c->end = rec->data + rec->len;
}

uint32_t crn_cur_u32(crn_plan_cur *c)
{
    uint32_t v;
    memcpy(&v, c->p, 4);
    c->p += 4;
    return v;
}

int32_t crn_cur_s32(crn_plan_cur *c)
{
    int32_t v;
    memcpy(&v, c->p, 4);
    c->p += 4;
    return v;
}

uint64_t crn_cur_u64(crn_plan_cur *c)
{
    uint64_t v;
    memcpy(&v, c->p, 8);
    c->p += 8;
    return v;
}

const char *crn_cur_str(crn_plan_cur *c)
{
    const char *s = (const char *)c->p;
    c->p += strlen(s) + 1;
    return s;
}

const void *crn_cur_rest(crn_plan_cur *c, size_t *len)
{
    const void *p = c->p;
    *len = (size_t)(c->end - c->p);
    c->p = c->end;
    return p;
}
