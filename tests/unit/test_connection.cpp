// Connection: every transition of the state machine, and the ones that must
// stop the daemon (asserts stay on in every build: meson.build b_ndebug).
#include <gtest/gtest.h>

#include "connection.hpp"

using namespace glockd;
using State = Connection::State;

namespace {

class ConnectionTest : public ::testing::Test {
 protected:
  Connection& opened() {
    Connection& c = table.allocate();
    c.start(7, Transport::Tcp, LayerPtr<Framing>(&LineFraming::instance()),
            LayerPtr<ByteStream>(&PlainStream::instance()));
    return c;
  }
  ConnectionTable table{64};
};

}  // namespace

TEST_F(ConnectionTest, StartsReading) {
  Connection& c = opened();
  EXPECT_EQ(c.state(), State::Reading);
  EXPECT_TRUE(c.open());
  EXPECT_TRUE(c.handles_requests_now());
  EXPECT_TRUE(c.idle());
  c.pending_input = "g x\n";
  EXPECT_FALSE(c.handles_requests_now());  // queued requests go first
}

TEST_F(ConnectionTest, BlockedAndBack) {
  Connection& c = opened();
  c.block();
  EXPECT_EQ(c.state(), State::Blocked);
  EXPECT_TRUE(c.waiting());
  EXPECT_TRUE(c.open());
  EXPECT_FALSE(c.handles_requests_now());
  c.end_wait();
  EXPECT_EQ(c.state(), State::Reading);
  EXPECT_FALSE(c.waiting());
}

TEST_F(ConnectionTest, ThrottledReturnsToWhereItWas) {
  Connection& c = opened();
  c.throttle();
  EXPECT_EQ(c.state(), State::Throttled);
  EXPECT_FALSE(c.waiting());
  c.unthrottle();
  EXPECT_EQ(c.state(), State::Reading);

  c.block();
  c.throttle();  // e.g. pongs piled up behind a wait
  EXPECT_EQ(c.state(), State::Throttled);
  EXPECT_TRUE(c.waiting());
  c.unthrottle();
  EXPECT_EQ(c.state(), State::Blocked);

  c.throttle();
  c.end_wait();  // granted while throttled: back to Reading afterwards
  EXPECT_EQ(c.state(), State::Throttled);
  EXPECT_FALSE(c.waiting());
  c.unthrottle();
  EXPECT_EQ(c.state(), State::Reading);
}

TEST_F(ConnectionTest, ThrottledServesQueuedRequestsUntilAWait) {
  // Throttled means not reading; its queue is still served (the loop adds
  // the bound on unsent answers), unless a wait is on.
  Connection& c = opened();
  c.throttle();
  EXPECT_TRUE(c.serves_requests());
  EXPECT_TRUE(c.handles_requests_now());
  c.pending_input = "g x\n";
  EXPECT_FALSE(c.handles_requests_now());
  c.block();  // a queued w: still not reading, now waiting
  EXPECT_EQ(c.state(), State::Throttled);
  EXPECT_TRUE(c.waiting());
  EXPECT_FALSE(c.serves_requests());
  c.unthrottle();
  EXPECT_EQ(c.state(), State::Blocked);
  c.end_wait();
  EXPECT_TRUE(c.serves_requests());
}

TEST_F(ConnectionTest, DrainThenCloseThenDetachOrFree) {
  for (State from : {State::Reading, State::Blocked, State::Throttled}) {
    Connection& c = opened();
    if (from != State::Reading) c.block();
    if (from == State::Throttled) c.throttle();
    ASSERT_EQ(c.state(), from);
    c.drain();
    EXPECT_EQ(c.state(), State::Draining);
    EXPECT_FALSE(c.open());
    c.close();
    EXPECT_EQ(c.state(), State::Closing);
    c.fd = -1;
    c.session.kept = true;
    c.closed();
    EXPECT_EQ(c.state(), State::Detached);
    c.session.kept = false;
    table.free(c);
    EXPECT_EQ(c.state(), State::Free);
  }
  EXPECT_EQ(table.in_use(), 0u);
}

TEST_F(ConnectionTest, CloseWaitsForOperationsInFlight) {
  Connection& c = opened();
  c.recv_armed();
  c.send_started();
  c.close();
  c.cancel_started();
  EXPECT_FALSE(c.idle());
  c.recv_ended();
  c.cancel_ended();
  EXPECT_FALSE(c.idle());
  c.send_ended();
  EXPECT_TRUE(c.idle());
  c.fd = -1;
  table.free(c);
}

TEST_F(ConnectionTest, FreedSlotsAreRecycledWithANewGeneration) {
  Connection& c = opened();
  const ConnId id = c.session.id;
  const std::uint32_t gen = c.gen;
  c.close();
  c.fd = -1;
  table.free(c);
  Connection& again = table.allocate();
  EXPECT_EQ(again.session.id, id);
  EXPECT_EQ(again.gen, gen + 1);
  EXPECT_EQ(again.state(), State::Free);
}

TEST_F(ConnectionTest, OutputGoesThroughTheStream) {
  Connection& c = opened();
  EXPECT_FALSE(c.take_output());  // nothing to send
  c.out = "1 Lock Get Success: x\n";
  ASSERT_TRUE(c.take_output());
  EXPECT_EQ(c.send_rest(), "1 Lock Get Success: x\n");
  EXPECT_TRUE(c.out.empty());
  c.send_started();
  c.out = "more\n";
  EXPECT_FALSE(c.take_output());  // one send in flight at a time
  c.sent = 5;  // the kernel took 5 of the 22 bytes in flight: 17 left, plus "more\n"
  EXPECT_EQ(c.unsent(), 17u + 5u);
}

using ConnectionDeathTest = ConnectionTest;

TEST_F(ConnectionDeathTest, TransitionsFromTheWrongStateAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(opened().end_wait(), "waiting");
  EXPECT_DEATH(opened().unthrottle(), "Throttled");
  EXPECT_DEATH({ Connection& c = opened(); c.block(); c.block(); }, "serves_requests");
  EXPECT_DEATH({ Connection& c = opened(); c.block(); c.throttle(); c.block(); },
               "serves_requests");
  EXPECT_DEATH({ Connection& c = opened(); c.drain(); c.drain(); }, "open");
  EXPECT_DEATH({ Connection& c = opened(); c.drain(); c.throttle(); }, "Reading");
  EXPECT_DEATH({ Connection& c = opened(); c.close(); c.close(); }, "Draining");
  EXPECT_DEATH(opened().closed(), "Closing");
}

TEST_F(ConnectionDeathTest, InFlightCountsCannotGoWrong) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ Connection& c = opened(); c.recv_armed(); c.recv_armed(); }, "recv");
  EXPECT_DEATH(opened().send_ended(), "send");
  EXPECT_DEATH(opened().cancel_ended(), "cancels");
  EXPECT_DEATH(opened().hangup_armed(), "Throttled");  // only a throttled connection polls
  // Closing with a recv still in flight: the descriptor may not go yet.
  EXPECT_DEATH({ Connection& c = opened(); c.recv_armed(); c.close(); c.fd = -1; c.closed(); },
               "idle");
  // Nor may a slot whose session still holds locks be reused.
  EXPECT_DEATH({ Connection& c = opened(); c.close(); c.fd = -1; c.session.kept = true;
                 table.free(c); }, "kept");
}
