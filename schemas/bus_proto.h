/*  =========================================================================
    bus_proto - the broker's wire protocol, declared once

    Every request crosses the broker as ZeroMQ multipart messages.  A front
    (gateway thread) talks to the broker over a DEALER; so does a worker
    actor.  The first frame says which side is speaking, the second frame
    is the command.  schemas/README.md describes every frame in prose.

      front  -> broker   CGC1 REQUEST  <service> <envelope> <body>
      broker -> front    CGC1 REPLY    <envelope> <body>
      broker -> front    CGC1 EVENT    <topic> <body>
      worker -> broker   CGW1 READY    <service>
      worker -> broker   CGW1 REPLY    <front id> <envelope> <body>
      worker -> broker   CGW1 EVENT    <front id | empty> <topic> <body>
      worker -> broker   CGW1 HEARTBEAT
      worker -> broker   CGW1 DISCONNECT
      broker -> worker   CGW1 REQUEST  <front id> <envelope> <body>
      broker -> worker   CGW1 HEARTBEAT
      broker -> worker   CGW1 DISCONNECT

    Events are also published on the broker's XPUB as two frames,
    <topic> <body>, where topic is "<sessionKey>/<event type>".
    =========================================================================
*/
#ifndef CG_BUS_PROTO_H
#define CG_BUS_PROTO_H

#define BUS_FRONT "CGC1"   //  Header of front <-> broker traffic
#define BUS_WORKER "CGW1"  //  Header of worker <-> broker traffic

#define BUS_READY "READY"
#define BUS_REQUEST "REQUEST"
#define BUS_REPLY "REPLY"
#define BUS_EVENT "EVENT"
#define BUS_HEARTBEAT "HEARTBEAT"
#define BUS_DISCONNECT "DISCONNECT"

//  Services the broker answers itself (Majordomo's MMI idea).
#define BUS_SERVICE_BROKER "mmi.services"

//  Limits that keep a hostile peer from making us allocate without bound.
#define BUS_MAX_FRAMES 8    //  More frames (routing id included): dropped
#define BUS_MAX_SERVICE 64  //  Longest service name
#define BUS_MAX_ID 255      //  Longest routing identity (ZeroMQ's)
#define BUS_MAX_TOPIC 256   //  Longest event topic

//  Default endpoints of `clawgate serve` (in-process).
#define BUS_INPROC_REQUESTS "inproc://clawgate-requests"
#define BUS_INPROC_EVENTS "inproc://clawgate-events"

#endif
