/*  =========================================================================
    curl_loop - libcurl transfers driven by an actor's zloop (see the header)
    =========================================================================
*/
#include "curl_loop.h"
#include "log.h"

#include <sys/epoll.h>
#include <unistd.h>

#define S_EPOLL_BATCH 256  //  Socket events taken per wake-up

struct curl_loop_t {
    zloop_t *loop;
    CURLM *multi;
    int epoll_fd;
    int n_socks;
    int timer_id;        //  libcurl's timeout, or -1
    int64_t timeout_at;  //  When it is due (zclock_mono), or -1
    zhashx_t *easies;    //  Transfers going (easy -> easy)
    curl_loop_done_fn *done;
    void *arg;
};

//  easies is keyed by the handle's address.
static int
s_ptr_compare (const void *a, const void *b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static size_t
s_ptr_hash (const void *key)
{
    return (size_t) (uintptr_t) key >> 4;
}

static int
s_on_socket (CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    curl_loop_t *self = (curl_loop_t *) arg;
    if (what == CURL_POLL_REMOVE) {
        if (sockp) {
            epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            self->n_socks--;
        }
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events =
        ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (sockp)
        return epoll_ctl (self->epoll_fd, EPOLL_CTL_MOD, fd, &ev) ? -1 : 0;
    if (self->n_socks == CURL_LOOP_MAX_SOCKETS
        || epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
        return -1;
    self->n_socks++;
    curl_multi_assign (self->multi, fd, self);
    return 0;
}

//  Hands every finished transfer to the done callback.
static void
s_drain (curl_loop_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left)))
        if (msg->msg == CURLMSG_DONE) {
            CURL *easy = msg->easy_handle;
            CURLcode result = msg->data.result;
            curl_multi_remove_handle (self->multi, easy);
            zhashx_delete (self->easies, easy);
            self->done (self->arg, easy, result);
        }
}

//  libcurl's timeout is due: lets it act, and hands on what ended.
static void
s_timeout (curl_loop_t *self)
{
    int running;
    self->timeout_at = -1;
    curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_drain (self);
}

static int
s_on_timeout (zloop_t *loop, int timer_id, void *arg)
{
    curl_loop_t *self = (curl_loop_t *) arg;
    self->timer_id = -1;  //  A one-shot timer: zloop drops it
    s_timeout (self);
    return 0;
}

static int
s_on_timer (CURLM *multi, long timeout_ms, void *arg)
{
    curl_loop_t *self = (curl_loop_t *) arg;
    if (self->timer_id >= 0) {
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    self->timeout_at = timeout_ms >= 0 ? zclock_mono () + timeout_ms : -1;
    if (timeout_ms >= 0)
        self->timer_id =
            zloop_timer (self->loop, (size_t) timeout_ms, 1, s_on_timeout, self);
    return 0;
}

static int
s_on_epoll (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    curl_loop_t *self = (curl_loop_t *) arg;
    struct epoll_event evs[S_EPOLL_BATCH];
    int ready = epoll_wait (self->epoll_fd, evs, S_EPOLL_BATCH, 0);
    int running;
    for (int i = 0; i < ready; i++) {
        int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0)
                    | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
                    | ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action (self->multi, evs[i].data.fd, flags, &running);
    }
    s_drain (self);
    return 0;
}

curl_loop_t *
curl_loop_new (zloop_t *loop, curl_loop_done_fn *done, void *arg)
{
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    curl_loop_t *self = (curl_loop_t *) calloc (1, sizeof (curl_loop_t));
    if (!self) {
        curl_global_cleanup ();
        return NULL;
    }
    self->loop = loop;
    self->done = done;
    self->arg = arg;
    self->timer_id = -1;
    self->timeout_at = -1;
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->multi = curl_multi_init ();
    self->easies = zhashx_new ();
    if (self->easies) {
        zhashx_set_key_duplicator (self->easies, NULL);
        zhashx_set_key_destructor (self->easies, NULL);
        zhashx_set_key_comparator (self->easies, s_ptr_compare);
        zhashx_set_key_hasher (self->easies, s_ptr_hash);
    }
    zmq_pollitem_t item = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
    if (self->epoll_fd < 0 || !self->multi || !self->easies
        || zloop_poller (loop, &item, s_on_epoll, self)) {
        curl_loop_destroy (&self);
        return NULL;
    }
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    return self;
}

void
curl_loop_destroy (curl_loop_t **self_p)
{
    curl_loop_t *self = *self_p;
    if (!self)
        return;
    if (self->easies) {
        for (void *e = zhashx_first (self->easies); e; e = zhashx_next (self->easies))
            curl_multi_remove_handle (self->multi, (CURL *) e);
        zhashx_destroy (&self->easies);
    }
    if (self->timer_id >= 0)
        zloop_timer_end (self->loop, self->timer_id);
    if (self->epoll_fd >= 0) {
        zmq_pollitem_t item = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
        zloop_poller_end (self->loop, &item);
    }
    if (self->multi)
        curl_multi_cleanup (self->multi);
    if (self->epoll_fd >= 0)
        close (self->epoll_fd);
    free (self);
    curl_global_cleanup ();  //  Pairs curl_loop_new's init (it counts)
    *self_p = NULL;
}

int
curl_loop_add (curl_loop_t *self, CURL *easy)
{
    if (curl_multi_add_handle (self->multi, easy) != CURLM_OK)
        return -1;
    zhashx_insert (self->easies, easy, easy);
    return 0;
}

void
curl_loop_remove (curl_loop_t *self, CURL *easy)
{
    if (self && easy && zhashx_lookup (self->easies, easy)) {
        curl_multi_remove_handle (self->multi, easy);
        zhashx_delete (self->easies, easy);
    }
}

void
curl_loop_due (curl_loop_t *self)
{
    if (self && self->timeout_at >= 0 && zclock_mono () >= self->timeout_at) {
        if (self->timer_id >= 0)
            zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
        s_timeout (self);
    }
}

size_t
curl_loop_size (curl_loop_t *self)
{
    return zhashx_size (self->easies);
}
