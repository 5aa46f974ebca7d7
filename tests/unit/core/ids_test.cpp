#include "core/ids.hpp"  // first: the header is self-contained

#include "core/message.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

namespace intercomm::core {
namespace {

using namespace std::chrono;

std::uint64_t now_millis() {
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

void expect_no_duplicates(std::vector<std::string> all) {
  std::sort(all.begin(), all.end());
  const auto duplicate = std::adjacent_find(all.begin(), all.end());
  EXPECT_EQ(duplicate, all.end()) << "duplicate id " << *duplicate;
}

// Reads every line a child process prints.
std::vector<std::string> read_lines(FILE* pipe) {
  std::vector<std::string> lines;
  char buffer[64];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
    std::string line(buffer);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

TEST(MessageIds, HaveTheDocumentedShapeAndTime) {
  const auto before = now_millis();
  const std::string id = new_message_id();
  const auto after = now_millis();
  EXPECT_EQ(id.size(), kMessageIdLength);
  EXPECT_TRUE(is_message_id(id)) << id;
  EXPECT_EQ(id.find_first_of("ILOU"), std::string::npos) << id;
  const auto millis = message_id_millis(id);
  ASSERT_TRUE(millis.has_value());
  EXPECT_GE(*millis, before);
  EXPECT_LE(*millis, after);
  EXPECT_FALSE(message_id_millis("X9J0UI76GBWQTF").has_value());
}

TEST(MessageIds, LaterIdsSortAfterEarlierOnes) {
  const std::string first = new_message_id();
  std::this_thread::sleep_for(milliseconds(3));
  const std::string second = new_message_id();
  EXPECT_LT(first, second);
  EXPECT_GT(*message_id_millis(second), *message_id_millis(first));
}

TEST(MessageIds, MillionFromFourThreadsAreUniqueAndOrderedPerThread) {
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kPerThread = 250'000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&made, t] {
      made[t].reserve(kPerThread);
      for (std::size_t i = 0; i < kPerThread; ++i) made[t].push_back(new_message_id());
    });
  }
  for (auto& thread : threads) thread.join();

  std::vector<std::string> all;
  for (const auto& ids : made) {
    ASSERT_EQ(ids.size(), kPerThread);
    EXPECT_TRUE(std::adjacent_find(ids.begin(), ids.end(), std::greater_equal<>()) == ids.end())
        << "a thread's ids do not sort in creation order";
    all.insert(all.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), kThreads * kPerThread);
  expect_no_duplicates(std::move(all));
}

TEST(MessageIds, TwoProcessesAtOnceMakeNoDuplicate) {
  constexpr int kPerProcess = 500'000;
  const std::string command = std::string(INTERCOMM_ID_DUMP) + " " + std::to_string(kPerProcess);
  FILE* first = popen(command.c_str(), "r");
  FILE* second = popen(command.c_str(), "r");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  // Both run concurrently; read one while the other fills its pipe.
  std::vector<std::string> second_ids;
  std::thread reader([&] { second_ids = read_lines(second); });
  std::vector<std::string> first_ids = read_lines(first);
  reader.join();
  EXPECT_EQ(pclose(first), 0);
  EXPECT_EQ(pclose(second), 0);

  for (const auto* ids : {&first_ids, &second_ids}) {
    ASSERT_EQ(ids->size(), static_cast<std::size_t>(kPerProcess));
    EXPECT_TRUE(std::adjacent_find(ids->begin(), ids->end(), std::greater_equal<>()) == ids->end());
  }
  first_ids.insert(first_ids.end(), second_ids.begin(), second_ids.end());
  expect_no_duplicates(std::move(first_ids));
}

TEST(MessageIds, ForkedChildDoesNotRepeatItsParent) {
  (void)new_message_id();  // the parent's generator exists before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    std::string out;
    for (int i = 0; i < 20'000; ++i) out += new_message_id() + "\n";
    const auto written = write(fds[1], out.data(), out.size());
    _exit(written == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::vector<std::string> parent_ids;
  for (int i = 0; i < 20'000; ++i) parent_ids.push_back(new_message_id());
  FILE* from_child = fdopen(fds[0], "r");
  std::vector<std::string> child_ids = read_lines(from_child);
  fclose(from_child);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(child_ids.size(), 20'000U);
  // Same clock, same counter state at the fork: only the node part can tell them apart.
  EXPECT_NE(child_ids.front().substr(13), parent_ids.front().substr(13));
  parent_ids.insert(parent_ids.end(), child_ids.begin(), child_ids.end());
  expect_no_duplicates(std::move(parent_ids));
}

}  // namespace
}  // namespace intercomm::core
