/*  =========================================================================
    example_tasks_cpp - a dpool task module written in C++
    (libdpool_example_cpp.so)

        reverse     text -> the text reversed
        upper       text -> the text upper-cased
        words       text -> its words sorted and without repeats, one space apart

    DP_MODULE works the same in a .cpp file: the table it defines has C
    linkage and default visibility, so a worker finds it with dlsym.
    Exceptions must not leave a task function (it is called from C): catch
    them and fail the item. Build it with g++:

        g++ -shared -fPIC example_tasks_cpp.cpp -o libdpool_example_cpp.so \
            $(pkg-config --cflags --libs dpool)
    =========================================================================
*/
#include <dpool_task.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <string>

namespace {

int
reverse (dp_task_t *task, const void *in, size_t len)
{
    std::string text (static_cast<const char *> (in), len);
    std::reverse (text.begin (), text.end ());
    return dp_task_reply (task, text.data (), text.size ());
}

int
upper (dp_task_t *task, const void *in, size_t len)
{
    std::string text (static_cast<const char *> (in), len);
    for (char &c : text)
        c = static_cast<char> (std::toupper (static_cast<unsigned char> (c)));
    return dp_task_reply (task, text.data (), text.size ());
}

int
words (dp_task_t *task, const void *in, size_t len)
{
    try {
        std::istringstream stream (std::string (static_cast<const char *> (in), len));
        std::set<std::string> seen;
        for (std::string word; stream >> word; )
            seen.insert (word);
        std::string out;
        for (const std::string &word : seen)
            out += (out.empty () ? "" : " ") + word;
        return dp_task_reply (task, out.data (), out.size ());
    }
    catch (const std::exception &e) {
        return dp_task_fail (task, "words: %s", e.what ());
    }
}

}   //  namespace

DP_MODULE (example_cpp,
    DP_TASK ("reverse", reverse),
    DP_TASK ("upper", upper),
    DP_TASK ("words", words));
