/*
 * The pure parts of the container map: container IDs from /proc/PID/cgroup
 * lines of every runtime and driver, near misses that must not match, and
 * the query encoding of the Docker event filter.
 */
#include "containers.h"
#include "docker_api.h"

#include "check.h"

#define ID  "4f66ad9a0b2e2b9e8f4a6d1c3b7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f901"
#define ID2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check_id(const char *line, const char *want_id, const char *want_rt, int lineno)
{
    char id[65] = "unchanged", rt[16] = "unchanged";
    int r = sl_cgroup_container_id(line, id, rt);

    check_count++;
    if (want_id == NULL) {
        if (r != 0) {
            check_failures++;
            fprintf(stderr, "%s:%d: '%s' matched %s (%s), want no match\n", __FILE__, lineno, line,
                    id, rt);
        }
        return;
    }
    if (r != 1 || strcmp(id, want_id) != 0 || strcmp(rt, want_rt) != 0) {
        check_failures++;
        fprintf(stderr, "%s:%d: '%s': got %d %s (%s), want %s (%s)\n", __FILE__, lineno, line, r,
                r ? id : "-", r ? rt : "-", want_id, want_rt);
    }
}
#define CHECK_ID(line, id, rt) check_id(line, id, rt, __LINE__)
#define CHECK_NONE(line)       check_id(line, NULL, NULL, __LINE__)

static void test_docker(void)
{
    /* cgroupfs driver, v2 and v1 (every controller line names it). */
    CHECK_ID("0::/docker/" ID, ID, "docker");
    CHECK_ID("0::/docker/" ID "\n", ID, "docker");
    CHECK_ID("0::/docker/" ID "\r\n", ID, "docker");
    CHECK_ID("12:memory:/docker/" ID, ID, "docker");
    CHECK_ID("4:cpu,cpuacct:/docker/" ID, ID, "docker");
    CHECK_ID("1:name=systemd:/docker/" ID, ID, "docker");
    /* A process in a sub-cgroup of its container. */
    CHECK_ID("0::/docker/" ID "/init", ID, "docker");
    /* systemd driver. */
    CHECK_ID("0::/system.slice/docker-" ID ".scope", ID, "docker");
    CHECK_ID("9:pids:/system.slice/docker-" ID ".scope", ID, "docker");
    CHECK_ID("0::/system.slice/docker-" ID ".scope/init.scope", ID, "docker");
    /* Docker under Kubernetes (dockershim) with the systemd driver. */
    CHECK_ID("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/"
             "docker-" ID ".scope",
             ID, "docker");
    /* Docker in Docker: the outer container is the one the host knows. */
    CHECK_ID("0::/docker/" ID "/docker/" ID2, ID, "docker");
    /* A bare path, as cgroup v2's cgroup.procs users have it. */
    CHECK_ID("/docker/" ID, ID, "docker");
}

static void test_kubernetes(void)
{
    CHECK_ID("0::/kubepods/burstable/pod0c1d2e3f-aaaa-bbbb-cccc-0123456789ab/" ID, ID,
             "containerd");
    CHECK_ID("11:memory:/kubepods/besteffort/pod0c1d2e3f-aaaa-bbbb-cccc-0123456789ab/" ID, ID,
             "containerd");
    CHECK_ID("0::/kubepods/pod0c1d2e3f/" ID, ID, "containerd");
    CHECK_ID("0::/kubepods.slice/kubepods-burstable.slice/"
             "kubepods-burstable-pod0c1d2e3f_aaaa_bbbb.slice/cri-containerd-" ID ".scope",
             ID, "containerd");
    /* containerd's systemd cgroup driver as cgroup v1 shows it. */
    CHECK_ID("3:memory:/system.slice/containerd.service/"
             "kubepods-burstable-pod0c1d2e3f_aaaa.slice:cri-containerd:" ID,
             ID, "containerd");
    /* nerdctl with the systemd driver. */
    CHECK_ID("0::/system.slice/nerdctl-" ID ".scope", ID, "containerd");
    /* The pod's own cgroup (the pause sandbox's parent) is no container. */
    CHECK_NONE("0::/kubepods/burstable/pod0c1d2e3f-aaaa-bbbb-cccc-0123456789ab");
    CHECK_NONE("0::/kubepods.slice/kubepods-burstable.slice");
}

static void test_crio_podman(void)
{
    CHECK_ID("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/crio-" ID
             ".scope",
             ID, "cri-o");
    CHECK_ID("0::/kubepods/besteffort/pod12/crio-" ID, ID, "cri-o");
    CHECK_ID("5:devices:/kubepods.slice/crio-" ID ".scope", ID, "cri-o");
    CHECK_ID("0::/kubepods.slice/kubepods-pod12.slice:crio:" ID, ID, "cri-o");
    /* conmon, CRI-O's monitor, sits beside the container: not it. */
    CHECK_NONE("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/"
               "crio-conmon-" ID ".scope");

    CHECK_ID("0::/machine.slice/libpod-" ID ".scope", ID, "podman");
    CHECK_ID("0::/machine.slice/libpod-" ID ".scope/container", ID, "podman");
    CHECK_ID("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID ".scope", ID,
             "podman");
    CHECK_ID("7:memory:/libpod_parent/libpod-" ID, ID, "podman");
    CHECK_NONE("0::/machine.slice/libpod-conmon-" ID ".scope");
    CHECK_NONE("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-" ID
               ".scope");
    /* podman's pod infra is named by the pod, not a container: still a
     * container cgroup inside it. */
    CHECK_ID("0::/machine.slice/machine-libpod_pod_" ID2 ".slice/libpod-" ID ".scope", ID,
             "podman");
}

static void test_not_containers(void)
{
    CHECK_NONE("");
    CHECK_NONE("0::/");
    CHECK_NONE("0::/init.scope");
    CHECK_NONE("0::/system.slice/docker.service");
    CHECK_NONE("0::/system.slice/containerd.service");
    CHECK_NONE("0::/user.slice/user-1000.slice/session-3.scope");
    CHECK_NONE("4:memory:/process_api/866a50822f7693c91a4bce17b294fddd");
    CHECK_NONE("9:name=systemd:/");
    CHECK_NONE("0::/docker");
    CHECK_NONE("0::/docker/");
    /* IDs of the wrong length or alphabet. */
    CHECK_NONE("0::/docker/" ID "0");
    CHECK_NONE("0::/docker/4f66ad9a0b2e");
    CHECK_NONE("0::/docker/4F66AD9A0B2E2B9E8F4A6D1C3B7E9F0A1B2C3D4E5F60718293A4B5C6D7E8F901");
    CHECK_NONE("0::/docker/4f66ad9a0b2e2b9e8f4a6d1c3b7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90g");
    CHECK_NONE("0::/system.slice/docker-" ID ".scopex");
    CHECK_NONE("0::/system.slice/docker-" ID ".mount");
    CHECK_NONE("0::/system.slice/docker-4f66ad9a0b2e.scope");
    CHECK_NONE("0::/system.slice/mydocker/" ID);
    /* A bare ID anywhere but under docker or a Kubernetes pod. */
    CHECK_NONE("0::/" ID);
    CHECK_NONE("0::/machine.slice/" ID);
    CHECK_NONE("0::/podcast/" ID);
    /* Lines that are not cgroup lines. */
    CHECK_NONE("docker/" ID);
    CHECK_NONE("x::/docker/" ID);
    CHECK_NONE(":memory:/docker/" ID);
    CHECK_NONE("12:memory");
    CHECK_NONE("12:memory:docker/" ID);
    CHECK(sl_cgroup_container_id(NULL, (char[65]){0}, (char[16]){0}) == 0);
}

static void test_urlencode(void)
{
    char out[128];

    CHECK(docker_urlencode("{\"type\":[\"container\",\"network\"]}", out, sizeof(out)) == 0);
    CHECK_EQ_STR(out, "%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%7D");
    CHECK(docker_urlencode("a-b_c.d~e f/\xc3\xa9", out, sizeof(out)) == 0);
    CHECK_EQ_STR(out, "a-b_c.d~e%20f%2F%C3%A9");
    CHECK(docker_urlencode("", out, sizeof(out)) == 0);
    CHECK_EQ_STR(out, "");
    CHECK(docker_urlencode("abc", out, 4) == 0);
    CHECK(docker_urlencode("abcd", out, 4) == -1);
    CHECK(docker_urlencode("ab{", out, 5) == -1);
    CHECK(docker_urlencode("ab{", out, 6) == 0);
}

int main(void)
{
    test_docker();
    test_kubernetes();
    test_crio_podman();
    test_not_containers();
    test_urlencode();
    CHECK_DONE();
}
